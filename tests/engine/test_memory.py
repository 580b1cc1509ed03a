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
    assert at(micro_batch=batch * 2).total > available  # halved until it fits: twice that did not
    seq_len = int(ways[1].split()[1])
    assert at(seq_len=seq_len).total <= available
    assert "still" in ways[2]  # the rank's share is small: lowering it alone does not fit, and it says so
    saved = float(ways[0].split("saves ")[1].split()[0])
    assert saved == pytest.approx((total - at(micro_batch=batch).total) / 2**30, abs=0.01)


def test_a_refused_run_names_the_settings_that_would_fit(embedded_model, monkeypatch) -> None:
    from forge_tui.config import load_config
    from forge_tui.engine.plan import resolve_plan

    config = load_config(None, "quick")
    plan = resolve_plan(config)

    def refusal_with(available: int) -> str | None:
        monkeypatch.setattr(memory, "available_bytes", lambda device: available)
        found = memory.estimate_for(config, plan, embedded_model, 256)
        advised = memory.advice(config, plan, embedded_model, 256, found)
        return memory.refusal(found, advised) if advised else None

    total = memory.estimate_for(config, plan, embedded_model, 256).total
    message = refusal_with(total - 2**28)
    assert message is not None
    assert message.startswith("not enough memory: estimated peak")
    assert "; to fit, set micro_batch_size 4 (saves" in message
    parameters = describe_directory(embedded_model).parameters or 0
    work = memory.workload(config, plan, 256)
    best_alone = min(estimate(embedded_model, parameters, lowered).total
                     for lowered in (replace(work, micro_batch=1), replace(work, seq_len=128), replace(work, r=4)))
    together = estimate(embedded_model, parameters, replace(work, micro_batch=1, seq_len=128, r=4)).total
    assert together < best_alone
    nothing_alone = refusal_with((together + best_alone) // 2)  # no setting fits alone, all together do
    assert nothing_alone is not None
    assert "short" in nothing_alone
    assert "all of these together (saves" in nothing_alone
    hopeless = refusal_with(2**30)  # less than the weights and runtime: no setting helps
    assert hopeless is not None
    assert "a smaller model: even all of these together leave it" in hopeless
    assert refusal_with(64 * 2**30) is None


def test_the_estimate_is_sized_for_rehearsal_rows_longer_than_the_data(embedded_model, write) -> None:
    """Rehearsal rows join training after the memory check: their longest is counted before it."""
    from forge_tui.config import DataConfig
    from forge_tui.engine.models import load_tokenizer
    from forge_tui.engine.rehearsal import REHEARSAL_TOKENS, longest_rehearsal

    tokenizer = load_tokenizer(embedded_model)
    long_answer = " ".join(["the pump was restarted after the pressure check"] * 40)
    rehearsal = write("long-rehearsal.jsonl", '{"messages": [{"role": "user", "content": "What happened?"}, '
                                              f'{{"role": "assistant", "content": "{long_answer}"}}]}}\n')
    from_file = DataConfig(rehearsal=str(rehearsal), rehearsal_answers="file", max_seq_len=4096)
    assert longest_rehearsal(from_file, tokenizer) > 300  # the whole long answer
    assert longest_rehearsal(replace(from_file, max_seq_len=256), tokenizer) == 256  # never past the cap
    generated = replace(from_file, rehearsal_answers="base")  # answers the base model will write: bounded
    assert REHEARSAL_TOKENS < longest_rehearsal(generated, tokenizer) < REHEARSAL_TOKENS + 60  # + question, template
    assert longest_rehearsal(replace(from_file, rehearsal=""), tokenizer) == 0


def test_the_dry_run_sizes_a_dataset_past_its_counting_budget_for_max_seq_len(monkeypatch) -> None:
    """The dry run tokenizes at most COUNTED_SAMPLES samples (the Train screen reruns it on every
    change); past them it never guesses short: the estimate is for max_seq_len."""
    from forge_tui.config import load_config
    from forge_tui.engine import preflight
    from tests.helpers import ROOT

    config = load_config(None, "quick")
    data = ROOT / "sample_data" / "waterworks" / "train.jsonl"
    counted = preflight.preflight(config, data, may_probe=False).memory
    monkeypatch.setattr(preflight, "COUNTED_SAMPLES", 10)
    capped = preflight.preflight(config, data, may_probe=False).memory
    assert counted is not None
    assert capped is not None
    assert capped.total > counted.total  # the sample data is far shorter than max_seq_len 256
    monkeypatch.setattr(preflight, "COUNTED_SAMPLES", 10_000)
    again = preflight.preflight(config, data, may_probe=False).memory
    assert again is not None
    assert again.total == counted.total
