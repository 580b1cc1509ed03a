"""Base vs tuned on held-out data: one loaded base model, the run's adapter toggled on and off.

For every item both models answer (greedy, batched, fixed seed) and both are scored: domain facts
present, ROUGE-L similarity to the reference, the reference's perplexity under the model, and, on
retention items, whether a general question the base answers is still answered. Subscores, the
composite (scoring.WEIGHTS), per-category scores and a paired bootstrap 95% interval make the result;
events go to the run's event log as items finish, so a console can fill its table live.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forge_tui.config import Config
from forge_tui.engine import events as ev
from forge_tui.engine.batches import IGNORE, Encoded, collate
from forge_tui.engine.data import Sample, load_samples
from forge_tui.engine.events import read_events
from forge_tui.engine.fsutil import file_sha256
from forge_tui.engine.generation import generate, pad_id, prompt_ids
from forge_tui.engine.runner import Echo, owning
from forge_tui.engine.runs import RunDir, require_finished
from forge_tui.engine.scoring import ItemScores, bootstrap, composite, fact_score, rouge_l, subscores
from forge_tui.engine.telemetry.record import run_record
from forge_tui.errors import BadInput


@dataclass(frozen=True)
class BenchItem:
    id: str
    category: str
    kind: str                         # eval | retention
    prompt: tuple[dict[str, str], ...]
    reference: str
    facts: tuple[str, ...]


def _facts(sample: Sample) -> tuple[str, ...]:
    facts = sample.meta.get("facts", [])
    if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
        raise BadInput(f"{sample.where}: `facts` must be a list of non-empty strings")
    return tuple(facts)


def to_item(sample: Sample, kind: str) -> BenchItem:
    """A sample whose last turn is the reference answer; the turns before it are the prompt."""
    if sample.fmt == "text":
        raise BadInput(f"{sample.where}: a benchmark item needs a question and an answer, not plain text")
    if sample.uses_tools:
        raise BadInput(f"{sample.where}: a benchmark item is a question and its answer; tool use is not scored")
    turns = sample.as_dicts()
    facts = _facts(sample)
    if kind == "retention" and not facts:
        raise BadInput(f"{sample.where}: a retention item needs `facts` (what a correct answer contains)")
    category = str(sample.meta.get("category") or ("retention" if kind == "retention" else "all"))
    return BenchItem(str(sample.meta.get("id") or f"{sample.file.name}:{sample.line}"), category, kind,
                     tuple(turns[:-1]), turns[-1]["content"], facts)


def load_items(path: Path, kind: str, limit: int | None = None) -> list[BenchItem]:
    """Items of an eval or retention file (the readers' rules: FILE:LINE on anything wrong)."""
    if not path.is_file():
        raise BadInput(f"{path}: no such {kind} file")
    items = [to_item(sample, kind) for sample in load_samples(path)]
    if not items:
        raise BadInput(f"{path}: the {kind} set is empty")
    return items[:limit] if limit else items


def default_sets(run: RunDir) -> tuple[Path | None, Path | None]:
    """eval.jsonl and retention.jsonl beside the run's training file, where they exist."""
    dataset = Path(run.dataset()["path"])
    folder = dataset if dataset.is_dir() else dataset.parent
    found = [folder / name for name in ("eval.jsonl", "retention.jsonl")]
    return tuple(p if p.is_file() and p != dataset else None for p in found)  # type: ignore[return-value]


# --------------------------------------------------------------------------- the model


def reference_encoding(tokenizer: Any, item: BenchItem) -> Encoded:
    """The conversation through the reference, with labels on the reference answer only."""
    full = list(tokenizer.apply_chat_template([*item.prompt, {"role": "assistant", "content": item.reference}],
                                              tokenize=True, return_dict=False))
    start = len(prompt_ids(tokenizer, item.prompt))
    labels = [IGNORE] * start + full[start:]
    return Encoded(tuple(full), tuple(labels), False)


def reference_nll(model: Any, tokenizer: Any, items: Sequence[BenchItem], device: str) -> list[tuple[float, int]]:
    """Per item: summed negative log-likelihood of the reference answer's tokens, and their count."""
    import torch
    import torch.nn.functional as F

    encoded = [reference_encoding(tokenizer, item) for item in items]
    batch = {k: v.to(device) for k, v in collate(encoded, pad_id(tokenizer)).items()}
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    targets = batch["labels"][:, 1:]
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    return [(float(losses[row].sum()), int((targets[row] != IGNORE).sum())) for row in range(len(items))]


def score(item: BenchItem, answer: str, nll: tuple[float, int]) -> ItemScores:
    if item.kind == "retention":
        return ItemScores(correct=1.0 if fact_score(answer, item.facts) == 1.0 else 0.0)
    return ItemScores(facts=fact_score(answer, item.facts) if item.facts else None,
                      similarity=rouge_l(answer, item.reference), nll_sum=nll[0], nll_tokens=nll[1])


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Settings:
    max_new_tokens: int
    batch_size: int
    resamples: int
    seed: int


def settings_from(config: Config) -> Settings:
    return Settings(config.bench.max_new_tokens, config.bench.batch_size, config.bench.bootstrap, config.train.seed)


def _item_record(item: BenchItem, answers: tuple[str, str], scores: tuple[ItemScores, ItemScores]) -> dict[str, Any]:
    def side(answer: str, s: ItemScores) -> dict[str, Any]:
        return {"answer": answer, **{k: v for k, v in asdict(s).items() if v is not None}}

    return {"id": item.id, "category": item.category, "kind": item.kind, "question": item.prompt[-1]["content"],
            "reference": item.reference, "facts": list(item.facts),
            "base": side(answers[0], scores[0]), "tuned": side(answers[1], scores[1])}


def _model_hash(run: RunDir) -> str:
    from forge_tui.engine.models import model_sha256, resolve_model

    config = run.config()
    return model_sha256(resolve_model(config.model.name, config.models.paths))


def summarise(items: list[BenchItem], base: list[ItemScores], tuned: list[ItemScores], settings: Settings) -> dict[str, Any]:
    """Subscores, composites, deltas, per-category scores and the bootstrap interval."""
    result: dict[str, Any] = {}
    for name, scores in (("base", base), ("tuned", tuned)):
        sub = subscores(scores)
        result[name] = {"composite": round(composite(sub), 2), "subscores": {k: _round(v) for k, v in sub.items()}}
    result["delta"] = {"composite": round(result["tuned"]["composite"] - result["base"]["composite"], 2),
                       "subscores": {k: _difference(result["tuned"]["subscores"][k], result["base"]["subscores"][k])
                                     for k in result["base"]["subscores"]}}
    result["ci95"] = bootstrap(base, tuned, resamples=settings.resamples, seed=settings.seed)
    result["significant"] = result["ci95"]["delta"][0] > 0 or result["ci95"]["delta"][1] < 0
    categories: dict[str, dict[str, Any]] = {}
    for category in dict.fromkeys(item.category for item in items):
        rows = [i for i, item in enumerate(items) if item.category == category]
        categories[category] = {"items": len(rows), **{
            name: {"composite": round(composite(sub := subscores([scores[i] for i in rows])), 2),
                   "subscores": {k: _round(v) for k, v in sub.items()}}
            for name, scores in (("base", base), ("tuned", tuned))}}
    result["categories"] = categories
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def run_bench(run: RunDir, eval_path: Path, retention_path: Path | None, settings: Settings, *,
              limit: int | None = None, echo: Echo | None = None) -> dict[str, Any]:
    """Benchmark a finished run; events go to its log; returns the result (also in RUN/bench/result.json)."""
    adapter = require_finished(run)
    items = load_items(eval_path, "eval", limit)
    if retention_path is not None:
        items += load_items(retention_path, "retention", limit)
    with owning(run, lambda exc: ev.BenchFailed(message=str(exc) or type(exc).__name__), echo) as owner:
        return _bench(run, adapter, items, (eval_path, retention_path), settings, owner.emit)


def _bench(run: RunDir, adapter: Path, items: list[BenchItem], files: tuple[Path, Path | None], settings: Settings,
           emit: Callable[[ev.Event], ev.Record]) -> dict[str, Any]:
    import torch

    started = time.monotonic()
    emit(ev.BenchStarted(items=len(items), eval_file=str(files[0]), retention_file=str(files[1]) if files[1] else None))
    from forge_tui.engine.plan import load_for_answers

    model, tokenizer, device = load_for_answers(run.config(), adapter)
    base_scores: list[ItemScores] = []
    tuned_scores: list[ItemScores] = []
    records = []
    for start in range(0, len(items), settings.batch_size):
        chunk = items[start:start + settings.batch_size]
        torch.manual_seed(settings.seed)
        prompts = [item.prompt for item in chunk]
        with model.disable_adapter():
            base_answers = generate(model, tokenizer, prompts, device, settings.max_new_tokens)
            base_nll = reference_nll(model, tokenizer, chunk, device)
        tuned_answers = generate(model, tokenizer, prompts, device, settings.max_new_tokens)
        tuned_nll = reference_nll(model, tokenizer, chunk, device)
        for i, item in enumerate(chunk):
            pair = (score(item, base_answers[i], base_nll[i]), score(item, tuned_answers[i], tuned_nll[i]))
            base_scores.append(pair[0])
            tuned_scores.append(pair[1])
            records.append(_item_record(item, (base_answers[i], tuned_answers[i]), pair))
            emit(ev.BenchItem(**records[-1]))
        emit(ev.BenchProgress(done=len(records), total=len(items), seconds=round(time.monotonic() - started, 1)))
    result = {"run": run.name, **summarise(items, base_scores, tuned_scores, settings), "items": records}
    meta = run.meta()
    result["hashes"] = {"adapter": file_sha256(adapter / "adapter_model.safetensors"), "config": meta["config_sha256"],
                        "dataset": meta["dataset_sha256"], "model": _model_hash(run),
                        "eval": file_sha256(files[0]), "retention": file_sha256(files[1]) if files[1] else None}
    result["settings"] = asdict(settings)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["cost"] = run_record(run.path, read_events(run.events)).to_json()  # of the training this benchmark judges
    out = run.path / "bench"
    out.mkdir(exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    emit(ev.BenchResult(base=result["base"]["composite"], tuned=result["tuned"]["composite"],
                        delta=result["delta"]["composite"], ci95=result["ci95"]["delta"],
                        result=str(out / "result.json"), seconds=result["seconds"]))
    return result

