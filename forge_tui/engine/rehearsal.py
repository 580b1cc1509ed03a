"""Rehearsal against forgetting: general conversations mixed into the training split.

With `rehearsal_answers = "base"` the rows are self-distilled: the base model answers the rehearsal
questions itself, and those rows are scored by KL from the base model's distribution at every
position (loss.py), so the adapter is held to what the model already says about general text rather
than taught new facts. The answers are written once into the run directory, so a resumed run
rehearses exactly the same conversations.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from forge_tui.config import Config, DataConfig
from forge_tui.engine.batches import Encoded, encode_for_training
from forge_tui.engine.data import Message, Reading, Sample, load_samples
from forge_tui.engine.fsutil import file_sha256, write_durably
from forge_tui.engine.generation import generate
from forge_tui.errors import BadInput

BUILTIN_REHEARSAL = {"general": Path(__file__).with_name("general_rehearsal.jsonl")}
ANSWERS_FILE = "rehearsal-answers.jsonl"
REHEARSAL_BATCH = 16
REHEARSAL_TOKENS = 64
TURN_END = 8  # room for a chat template's end-of-turn tokens after an answer (they take 1-3)


def rehearsal_file(spec: str) -> Path | None:
    """The rehearsal set a config names: none, a built-in one, or a file."""
    if not spec:
        return None
    return BUILTIN_REHEARSAL.get(spec) or Path(spec).expanduser().resolve()


def rehearsal_record(config: Config) -> dict[str, Any] | None:
    """Path and hash of the rehearsal set, checked like any training data before the run exists."""
    path = rehearsal_file(config.data.rehearsal)
    if path is None:
        return None
    if not path.is_file():
        raise BadInput(f"[data] rehearsal: {path}: no such file")
    load_samples(path, Reading(config.data.max_record_bytes))
    return {"path": str(path), "sha256": file_sha256(path)}


def distilled(encoded: Encoded) -> Encoded:
    """A self-distilled rehearsal row: scored by KL from the base model at every position, prompt
    included, so the adapter is held to the base model's reading of general text, not only to its
    answers."""
    return replace(encoded, labels=encoded.input_ids, distill=True)


def whole_sentences(text: str) -> str:
    """An answer cut off by the token limit, trimmed back to its last complete sentence."""
    text = text.strip()
    if not text or text[-1] in ".!?":
        return text
    end = max(text.rfind(mark) for mark in ".!?")
    return text[: end + 1] if end >= 8 else text


def rehearsal_rows(data: DataConfig, run_path: Path, tokenizer: Any, model: Any, device: str, domain: int) -> list[Encoded]:
    """General conversations making up `rehearsal_share` of the training split (the set repeated in
    file order as needed); `domain` is the number of domain rows they join."""
    path = rehearsal_file(data.rehearsal)
    if path is None or domain == 0:
        return []
    samples = load_samples(path, Reading(data.max_record_bytes))
    self_distilled = data.rehearsal_answers == "base"
    if self_distilled:
        samples = with_base_answers(samples, run_path / ANSWERS_FILE, model, tokenizer, device)
    general = [encode_for_training(tokenizer, sample, data.max_seq_len) for sample in samples]
    general = [distilled(e) for e in general] if self_distilled else general
    count = round(domain * data.rehearsal_share / (1 - data.rehearsal_share))
    return [general[i % len(general)] for i in range(count)] if general else []


def longest_rehearsal(data: DataConfig, tokenizer: Any) -> int:
    """The longest rehearsal row training can meet, in tokens, known before any answer is generated:
    a self-distilled row is its question plus at most REHEARSAL_TOKENS of the base model's answer."""
    path = rehearsal_file(data.rehearsal)
    if path is None:
        return 0
    from forge_tui.engine.tokens import encode_sample, render

    samples = load_samples(path, Reading(data.max_record_bytes))
    if data.rehearsal_answers == "base":
        lengths = [len(render(tokenizer, s.as_dicts()[:-1], s, generation_prompt=True)) + REHEARSAL_TOKENS + TURN_END for s in samples]
    else:
        lengths = [len(encode_sample(tokenizer, s)) for s in samples]
    return min(max(lengths, default=0), data.max_seq_len)


def with_base_answers(samples: list[Sample], cache: Path, model: Any, tokenizer: Any, device: str) -> list[Sample]:
    """The rehearsal questions with the base model's own greedy answers (the adapter switched off),
    read from `cache` when an earlier start of the run wrote it."""
    if cache.is_file():
        answers = [json.loads(line)["answer"] for line in cache.read_text(encoding="utf-8").splitlines()]
    else:
        answers = _base_answers(samples, model, tokenizer, device)
        write_durably(cache, "".join(json.dumps({"answer": a}, ensure_ascii=False) + "\n" for a in answers))
    return [replace(sample, messages=(*sample.messages[:-1], Message("assistant", whole_sentences(answer))))
            for sample, answer in zip(samples, answers, strict=True) if answer.strip()]


def _base_answers(samples: list[Sample], model: Any, tokenizer: Any, device: str) -> list[str]:
    model.eval()
    with model.disable_adapter():
        answers = [answer for start in range(0, len(samples), REHEARSAL_BATCH)
                   for answer in generate(model, tokenizer, [s.as_dicts()[:-1] for s in samples[start:start + REHEARSAL_BATCH]],
                                          device, REHEARSAL_TOKENS)]
    model.train()
    return answers
