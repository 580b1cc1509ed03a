"""How long a run will take on this device, said before it starts.

A short probe measures this device at the run's real shapes, in the dry run's child process: the
model's load, the base model's answers to rehearsal questions (one batch), three optimizer steps on
real batches (the first is warm-up: allocation, compilation), an eval pass and a checkpoint's
write. Its speeds are cached per model, device and shape (`speeds.json` in the cache directory), so
the Train screen's dry run after every change to the form stays quick; a change to the shape
measures again.

The estimate adds up the run's parts from those speeds: the steps' padded tokens (the trainer's own
batch plan over the dataset's real lengths) at the measured seconds per token, the evals, the
checkpoints, the rehearsal answers and the load. `benchmarks/eta_accuracy.py` checks it against
finished runs (the target is within 25%).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from forge_tui.config import Config
from forge_tui.engine.batches import Encoded, batch_at, micro_batches, steps_per_epoch
from forge_tui.engine.plan import Plan
from forge_tui.paths import cache_dir
from forge_tui.units import about, duration

PROBE_STEPS = 5          # spread over the first epoch's batches; the first is warm-up, not counted in the rate
PROBE_ANSWERS = 16       # rehearsal questions answered by the probe (one generation batch)
SPEEDS_VERSION = 2
T = TypeVar("T")
PROBE_ROWS = 512        # samples the probe's batches are drawn from
KEPT_SPEEDS = 64         # shapes remembered per machine (the oldest measured is dropped)


@dataclass(frozen=True)
class Speeds:
    """What the probe measured on this device for one model and shape."""

    load_s: float
    warmup_s: float            # the first step's time beyond a steady one (allocation, compilation)
    train_s_per_token: float   # one optimizer step's seconds per padded token (forward, backward, update)
    eval_s_per_token: float
    save_s: float
    answer_s: float | None     # seconds per base-model rehearsal answer (None: no self-distilled rehearsal)
    answer_extra_tokens: float = 0.0   # how much longer the base model's answers are than the set's own


@dataclass(frozen=True)
class Estimate:
    seconds: float
    parts: dict[str, float]    # load, answers, warm-up, steps, evals, checkpoints
    measured: bool             # the probe ran now (False: this device's speeds came from the cache)


def eta_words(found: Estimate) -> str:
    """"about 11 min on this device (measured now: ...)", the largest parts named."""
    parts = ", ".join(f"{name} {duration(seconds)}" for name, seconds in found.parts.items() if seconds >= 1)
    how = "speeds measured now" if found.measured else "this device's measured speeds"
    return f"{about(found.seconds)} on this device ({parts}; {how})"


def padded_tokens(lengths: list[int], micro_batch: int) -> int:
    """Tokens a step computes over (samples of these lengths, in order): each micro-batch padded to
    its longest sample."""
    return sum(len(chunk) * max(chunk) for chunk in micro_batches(lengths, micro_batch) if chunk)


def _lengths(rows: list[Encoded]) -> list[int]:
    return [len(e.input_ids) for e in rows]


def speeds_key(config: Config, plan: Plan, model_dir: Path) -> str:
    """What the speeds depend on: the model, the device and precision, the step's shape, the threads,
    the rehearsal set (by its file: a run records the path its name resolves to)."""
    from forge_tui.engine.rehearsal import rehearsal_file

    train, lora, data = config.train, config.lora, config.data
    parts = [str(model_dir.resolve()), plan.device, plan.dtype, plan.quantized, plan.checkpointing, plan.compiled,
             train.micro_batch_size, train.threads or os.cpu_count(), data.max_seq_len, lora.r, list(lora.target_modules),
             lora.dropout, str((rehearsal_file(data.rehearsal) or Path()).resolve()), data.rehearsal_answers, SPEEDS_VERSION]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def _cache_file() -> Path:
    return cache_dir() / "speeds.json"


def _known_speeds() -> dict[str, Any]:
    """Every cached shape; an empty cache for a missing, damaged or foreign file (measured again)."""
    try:
        known = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def cached_speeds(key: str) -> Speeds | None:
    record = _known_speeds().get(key)
    try:
        speeds = Speeds(**record) if isinstance(record, dict) else None
    except TypeError:
        return None   # written by another version: measure again
    numbers = [v for v in asdict(speeds).values() if v is not None] if speeds else []
    return speeds if speeds and all(isinstance(v, (int, float)) and v >= 0 for v in numbers) else None


def remember_speeds(key: str, speeds: Speeds) -> None:
    """Add this shape's speeds to the cache (written whole, then renamed: two dry runs at once
    never leave it half written); a cache that cannot be written costs the next dry run a probe."""
    known = _known_speeds()
    known.pop(key, None)
    known[key] = asdict(speeds)   # the newest last: the oldest are dropped past KEPT_SPEEDS
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".speeds-", suffix=".tmp", delete=False,
                                         encoding="utf-8") as staged:
            staged.write(json.dumps(dict(list(known.items())[-KEPT_SPEEDS:]), indent=1))
        Path(staged.name).replace(path)
    except OSError:
        return


def _timed(job: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = job()
    return result, time.perf_counter() - started


def probe(config: Config, plan: Plan, model_dir: Path, train: list[Encoded], held: list[Encoded]) -> Speeds:
    """Measure this device at the run's shapes (domain rows mixed with rehearsal rows the base model
    answered, as the trainer mixes them)."""
    import torch

    from forge_tui.engine.generation import pad_id
    from forge_tui.engine.models import load_tokenizer
    from forge_tui.engine.plan import add_adapter, compile_layers, load_for_training
    from forge_tui.engine.train import held_out_loss, train_batch

    torch.set_num_threads(config.train.threads or os.cpu_count() or 1)
    tokenizer = load_tokenizer(model_dir)
    model, load_s = _timed(lambda: add_adapter(load_for_training(model_dir, plan), config))
    rows, answer_s, extra = _rehearsal_probe(config, tokenizer, model, plan.device)
    if plan.compiled:
        compile_layers(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.train.learning_rate)
    mixed = mixed_rows(train, rows, config.data.rehearsal_share)
    lengths = tuple(len(e.input_ids) for e in mixed)
    micro = config.train.micro_batch_size
    effective = micro * config.train.grad_accum
    times, tokens = [], []
    spread = max(steps_per_epoch(len(mixed), effective), PROBE_STEPS)   # past the first epoch on a small dataset
    for step in (index * spread // PROBE_STEPS for index in range(PROBE_STEPS)):
        batch = [mixed[i] for i in batch_at(step, lengths, effective, config.train.seed)[1]]
        _, seconds = _timed(lambda batch=batch: train_batch(
            model, optimizer, trainable, batch, micro_batch=micro, device=plan.device, pad=pad_id(tokenizer),
            max_grad_norm=config.train.max_grad_norm, kl_weight=config.data.rehearsal_weight))
        times.append(seconds)
        tokens.append(padded_tokens(_lengths(batch), micro))
    rate = sum(times[1:]) / max(1, sum(tokens[1:]))
    ranked = sorted(held or train, key=lambda e: len(e.input_ids))
    sample = ranked[:: max(1, len(ranked) // (2 * micro))][: 2 * micro]   # short to long, as the eval meets them
    _, eval_s = _timed(lambda: held_out_loss(model, sample, micro_batch=micro, pad=pad_id(tokenizer), device=plan.device))
    return Speeds(load_s=round(load_s, 3), warmup_s=round(max(0.0, times[0] - rate * tokens[0]), 3),
                  train_s_per_token=rate, eval_s_per_token=eval_s / max(1, padded_tokens(_lengths(sample), micro)),
                  save_s=round(_save_time(trainable, optimizer), 3), answer_s=answer_s, answer_extra_tokens=extra)


def _rehearsal_probe(config: Config, tokenizer: Any, model: Any, device: str) -> tuple[list[Encoded], float | None, float]:
    """Rehearsal rows for the probe's batches; with self-distilled answers, the base model answers
    one batch of questions, and the seconds per answer and how many tokens longer its answers are
    than the set's own are measured."""
    from forge_tui.engine.batches import encode_for_training
    from forge_tui.engine.data import Reading, load_samples
    from forge_tui.engine.rehearsal import distilled, rehearsal_file, with_base_answers

    path = rehearsal_file(config.data.rehearsal)
    if path is None:
        return [], None, 0.0
    samples = load_samples(path, Reading(config.data.max_record_bytes))[:PROBE_ANSWERS]
    own = [encode_for_training(tokenizer, sample, config.data.max_seq_len) for sample in samples]
    if config.data.rehearsal_answers != "base":
        return own, None, 0.0
    with tempfile.TemporaryDirectory(prefix="forge-probe-") as folder:
        answered, seconds = _timed(lambda: with_base_answers(samples, Path(folder) / "answers.jsonl", model, tokenizer, device))
    rows = [distilled(encode_for_training(tokenizer, sample, config.data.max_seq_len)) for sample in answered]
    extra = sum(_lengths(rows)) / max(1, len(rows)) - sum(_lengths(own)) / max(1, len(own))
    return rows, seconds / max(1, len(samples)), round(extra, 1)


def _save_time(trainable: list[Any], optimizer: Any) -> float:
    """One checkpoint's write: the adapter and the optimizer's state."""
    import torch

    with tempfile.TemporaryDirectory(prefix="forge-probe-") as folder:
        _, seconds = _timed(lambda: torch.save({"adapter": [p.detach() for p in trainable], "optimizer": optimizer.state_dict()},
                                               Path(folder) / "state.pt"))
    return seconds


def mixed_rows(train: list[T], rehearsal: list[T], share: float) -> list[T]:
    """The training split as the trainer mixes it: the domain rows, then rehearsal rows making up
    `share` of the whole (the rehearsal set repeated in order as needed)."""
    count = round(len(train) * share / (1 - share)) if rehearsal else 0
    return train + [rehearsal[i % len(rehearsal)] for i in range(count)]


def rehearsal_questions(config: Config) -> int:
    """Questions the base model answers before a self-distilled run's first step (the whole set)."""
    from forge_tui.engine.rehearsal import rehearsal_file

    path = rehearsal_file(config.data.rehearsal)
    if path is None or config.data.rehearsal_answers != "base":
        return 0
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def estimate(config: Config, speeds: Speeds, mixed: list[int], held: list[int], *, questions: int,
             measured: bool) -> Estimate:
    """The run's seconds from this device's speeds: every step's padded tokens over the trainer's own
    batch plan (`mixed`: the lengths of the domain and rehearsal rows), the evals, the checkpoints,
    the answers."""
    from forge_tui.engine.train import total_steps

    t = config.train
    lengths = tuple(mixed)
    steps = total_steps(config, len(mixed))
    effective = t.micro_batch_size * t.grad_accum
    step_tokens = sum(padded_tokens([lengths[i] for i in batch_at(step, lengths, effective, t.seed)[1]], t.micro_batch_size)
                      for step in range(steps))
    # evals: the starting point, every eval_every steps, and the end; checkpoints likewise, and the adapter
    evals = (1 + steps // t.eval_every + (steps % t.eval_every != 0) if t.eval_every else 2) if held else 0
    saves = (steps // t.save_every + (steps % t.save_every != 0) if t.save_every else 1) + 1
    held_tokens = padded_tokens(sorted(held), t.micro_batch_size) if held else 0
    parts = {"load": speeds.load_s, "answers": questions * (speeds.answer_s or 0.0), "warm-up": speeds.warmup_s,
             "steps": step_tokens * speeds.train_s_per_token, "evals": evals * held_tokens * speeds.eval_s_per_token,
             "checkpoints": saves * speeds.save_s}
    return Estimate(seconds=round(sum(parts.values()), 1), parts={k: round(v, 1) for k, v in parts.items()}, measured=measured)


def rehearsal_encoded(config: Config, tokenizer: Any) -> list[Encoded]:
    """The rehearsal set encoded with its own answers: their lengths stand for the base model's
    answers (bounded by the same budget) before those exist."""
    from forge_tui.engine.batches import encode_for_training
    from forge_tui.engine.data import Reading, load_samples
    from forge_tui.engine.rehearsal import rehearsal_file

    path = rehearsal_file(config.data.rehearsal)
    if path is None:
        return []
    return [encode_for_training(tokenizer, s, config.data.max_seq_len) for s in load_samples(path, Reading(config.data.max_record_bytes))]


def _cycled(lengths: list[int | None]) -> list[int]:
    """Lengths past the tokenized ones taken as the tokenized ones again, in order."""
    known = [n for n in lengths if n is not None] or [1]
    return [known[i % len(known)] if n is None else n for i, n in enumerate(lengths)]


def probe_rows(config: Config, tokenizer: Any) -> tuple[list[Encoded], list[Encoded]]:
    """The dataset's first PROBE_ROWS samples, encoded as the trainer encodes them, by split: what
    the probe's batches are made of (read as a stream: a big dataset is not read whole for it)."""
    from forge_tui.engine.batches import encode_for_training
    from forge_tui.engine.data import Reading, read_dataset
    from forge_tui.engine.datacheck import in_eval_split, sample_key
    from forge_tui.engine.sample import Sample

    rows: tuple[list[Encoded], list[Encoded]] = ([], [])
    samples = (item for item in read_dataset([Path(config.train.dataset)], Reading.of(config.data)) if isinstance(item, Sample))
    for sample in itertools.islice(samples, PROBE_ROWS):
        side = int(in_eval_split(sample_key(sample), config.data.eval_fraction))
        rows[side].append(encode_for_training(tokenizer, sample, config.data.max_seq_len))
    return rows

def forecast(config: Config, plan: Plan, model_dir: Path, tokenizer: Any, lengths: tuple[list[int | None], list[int | None]], *,
             may_probe: bool = True) -> Estimate | None:
    """The dry run's estimate for `config.train.dataset`, from the samples' token lengths by split
    (train, held-out: as the check counted them; None past its budget, taken as the counted ones again):
    from this device's cached speeds, or a probe measured now (None when there are none and
    `may_probe` is off)."""
    key = speeds_key(config, plan, model_dir)
    speeds, measured = cached_speeds(key), False
    if speeds is None:
        if not may_probe:
            return None
        speeds, measured = probe(config, plan, model_dir, *probe_rows(config, tokenizer)), True
        remember_speeds(key, speeds)
    answered = [min(config.data.max_seq_len, round(n + speeds.answer_extra_tokens))
                for n in _lengths(rehearsal_encoded(config, tokenizer))]
    mixed = mixed_rows(_cycled(lengths[0]), answered, config.data.rehearsal_share)
    return estimate(config, speeds, mixed, _cycled(lengths[1]), questions=rehearsal_questions(config), measured=measured)


def cached_estimate(config: Config, plan: Plan, model_dir: Path, mixed: list[Encoded], held: list[Encoded]) -> Estimate | None:
    """The runner's own estimate at its start, from the speeds the dry run measured (None when this
    shape was never measured here: the runner does not stop to probe)."""
    speeds = cached_speeds(speeds_key(config, plan, model_dir))
    if speeds is None:
        return None
    return estimate(config, speeds, _lengths(mixed), _lengths(held), questions=rehearsal_questions(config), measured=False)
