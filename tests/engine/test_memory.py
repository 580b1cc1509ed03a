"""The memory estimate's shape (what it grows with, what it knows the chunked head never builds) and
the refusal's advice: every setting it names, lowered as it says, does fit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from forge_tui.engine import memory
from forge_tui.engine.loss import HEAD_CHUNK
from forge_tui.engine.memory import MemoryEstimate, Workload, estimate, terms, ways_to_fit
from forge_tui.engine.models import describe_directory

WORK = Workload(device="cpu", quantized=False, dtype="fp32", r=16, micro_batch=8, seq_len=1024, checkpointing=False,
                rehearsal=False)


@pytest.fixture
def at(embedded_model: Path) -> Callable[..., MemoryEstimate]:
    """The embedded model's estimate at WORK with some fields changed."""
    parameters = describe_directory(embedded_model).parameters or 0
    return lambda **changes: estimate(embedded_model, parameters, replace(WORK, **changes))


def test_the_head_is_one_chunk_of_logits_whatever_the_batch(at) -> None:
    """The head runs over HEAD_CHUNK positions at a time: past one chunk, the logits term stops growing."""
    one_chunk = at(micro_batch=1, seq_len=HEAD_CHUNK).logits
    assert at().logits == one_chunk
    assert at(micro_batch=1, seq_len=HEAD_CHUNK // 4).logits == one_chunk // 4
    assert at(rehearsal=True).logits == 2 * one_chunk  # adapted and base distribution


def test_activations_follow_tokens_and_checkpointing_keeps_only_layer_inputs(at, embedded_model) -> None:
    full = at().activations
    assert at(micro_batch=4).activations == pytest.approx(full / 2, rel=0.01)
    assert at(checkpointing=True).activations < full
    parameters = describe_directory(embedded_model).parameters or 0
    checkpointed = terms(embedded_model, parameters, replace(WORK, checkpointing=True))
    assert checkpointed.activation == checkpointed.compiled == 0  # no layer keeps its activations...
    assert checkpointed.kept_inputs == 8 * 1024 * 30 * 576 * 4  # ...only its input (tokens x layers x hidden, fp32)
    compiled = terms(embedded_model, parameters, replace(WORK, compiled=True))
    assert compiled.activation == 0
    assert compiled.compiled == terms(embedded_model, parameters, WORK).activation  # compiled layers have their own constant


def test_every_way_to_fit_named_in_a_refusal_does_fit(at, embedded_model) -> None:
    total = at().total
    available = total - 2 * 2**30
    ways = ways_to_fit(embedded_model, describe_directory(embedded_model).parameters or 0, WORK, available)
    assert [way.split()[0] for way in ways] == ["micro_batch_size", "max_seq_len", "lora"]
    batch = int(ways[0].split()[1])
    assert at(micro_batch=batch).total <= available
    assert at(micro_batch=batch * 2).total > available  # the largest that fits
    seq_len = int(ways[1].split()[1])
    assert at(seq_len=seq_len).total <= available
    assert "still" in ways[2]  # the rank's share is small: lowering it alone does not fit, and it says so
    saved = float(ways[0].split("saves ")[1].split()[0])
    assert saved == pytest.approx((total - at(micro_batch=batch).total) / 2**30, abs=0.01)


def test_a_refused_run_names_the_settings_that_would_fit(embedded_model, monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**30)
    from forge_tui.config import load_config
    from forge_tui.engine.plan import resolve_plan

    config = load_config(None, "quick")
    message = memory.refusal(config, resolve_plan(config), embedded_model, 256)
    assert message is not None
    assert message.startswith("not enough memory: estimated peak")
    assert "; to fit, set micro_batch_size 1 (saves" in message
    monkeypatch.setattr(memory, "available_bytes", lambda device: 64 * 2**30)
    assert memory.refusal(config, resolve_plan(config), embedded_model, 256) is None
