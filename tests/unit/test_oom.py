"""CUDA out-of-memory handling, at its seam: the micro-batch halves, the effective batch stays, a
warning is emitted; at micro-batch 1 the run ends with a clear error. (No GPU here: the accumulate
step raises torch's real OutOfMemoryError.)"""

from __future__ import annotations

from typing import cast

import pytest
import torch

from forge_tui.engine import events as ev
from forge_tui.engine.plan import Plan
from forge_tui.engine.telemetry.watch import ThermalWatch
from forge_tui.engine.train import Session, Trainer
from forge_tui.errors import ForgeError


def _trainer(fits_at: int) -> tuple[Trainer, list[ev.Record], list[int]]:
    trainer = Trainer.__new__(Trainer)
    records: list[ev.Record] = []
    def emit(event: ev.Event) -> ev.Record:
        records.append(event.to_json())
        return records[-1]

    trainer.emit = emit
    tried: list[int] = []

    def accumulate(session: Session, _batch: object) -> tuple[float, int]:
        tried.append(session.micro_batch)
        if session.micro_batch > fits_at:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return 1.0, 10

    trainer._accumulate = accumulate  # type: ignore[method-assign,assignment]
    return trainer, records, tried


class _Optimizer:
    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


def _session(micro: int, accum: int) -> Session:
    return Session(model=None, optimizer=_Optimizer(), trainable=[], train=[], held=[], pad_id=0,
                   plan=Plan("cuda", True, "bf16", True), threads=1, total=10, micro_batch=micro, grad_accum=accum,
                   watch=cast(ThermalWatch, None), step=5)


def test_halves_until_it_fits_and_keeps_the_effective_batch(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    trainer, records, tried = _trainer(fits_at=2)
    session = _session(micro=8, accum=2)
    assert trainer._optimizer_step(session, []) == (1.0, 10)
    assert tried == [8, 4, 2]
    assert (session.micro_batch, session.grad_accum) == (2, 8)
    warnings = [r["message"] for r in records if r["type"] == "warning"]
    assert len(warnings) == 2
    assert "micro-batch halved to 2, gradient accumulation 8" in warnings[-1]


def test_gives_up_clearly_at_micro_batch_one(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    trainer, _, tried = _trainer(fits_at=0)
    with pytest.raises(ForgeError, match=r"out of memory at micro-batch 1.*last checkpoint is intact"):
        trainer._optimizer_step(_session(micro=2, accum=1), [])
    assert tried == [2, 1]
