"""CUDA out-of-memory handling, at its seam: the micro-batch halves, the effective batch stays, a
warning is emitted; at micro-batch 1 the run ends with a clear error. (No GPU here: the accumulate
step raises torch's real OutOfMemoryError.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from forge_tui.engine.audit import AuditLog
from forge_tui.engine.train import Plan, Session, Trainer
from forge_tui.errors import ForgeError


class _Log:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def emit(self, event) -> dict:
        self.records.append(event.to_json())
        return self.records[-1]


def _trainer(micro: int, accum: int, fits_at: int) -> tuple[Trainer, _Log, list[int]]:
    trainer = Trainer.__new__(Trainer)
    log = _Log()
    trainer.log, trainer.echo = log, None
    trainer.audit = AuditLog(Path("/nonexistent/audit.jsonl"))  # warnings are not audited: never written
    trainer.micro_batch, trainer.grad_accum = micro, accum
    tried: list[int] = []

    def accumulate(*_args: object) -> tuple[float, int]:
        tried.append(trainer.micro_batch)
        if trainer.micro_batch > fits_at:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return 1.0, 10

    trainer._accumulate = accumulate  # type: ignore[method-assign]
    return trainer, log, tried


class _Optimizer:
    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


def _session() -> Session:
    return Session(model=None, optimizer=_Optimizer(), trainable=[], train=[], held=[], pad_id=0,
                   plan=Plan("cuda", True, "bf16", True), threads=1, total=10, step=5)


def test_halves_until_it_fits_and_keeps_the_effective_batch(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    trainer, log, tried = _trainer(micro=8, accum=2, fits_at=2)
    assert trainer._optimizer_step(_session(), []) == (1.0, 10)
    assert tried == [8, 4, 2] and (trainer.micro_batch, trainer.grad_accum) == (2, 8)
    warnings = [r["message"] for r in log.records if r["type"] == "warning"]
    assert len(warnings) == 2 and "micro-batch halved to 2, gradient accumulation 8" in warnings[-1]


def test_gives_up_clearly_at_micro_batch_one(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    trainer, _, tried = _trainer(micro=2, accum=1, fits_at=0)
    with pytest.raises(ForgeError, match="out of memory at micro-batch 1.*last checkpoint is intact"):
        trainer._optimizer_step(_session(), [])
    assert tried == [2, 1]
