"""The shipped sample data: reproducible from its generator, the promised sizes, and a fair eval."""

from __future__ import annotations

import json
import subprocess
import sys

from forge_tui.engine.data import Reading, load_samples
from tests.helpers import ROOT, SAMPLE


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / name).read_text(encoding="utf-8").splitlines()]


def test_committed_files_match_the_generator() -> None:
    result = subprocess.run([sys.executable, "sample_data/generate.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_sizes_and_formats() -> None:
    assert len(load_samples(SAMPLE / "train.jsonl")) == 623
    evaluation = load_samples(SAMPLE / "eval.jsonl")
    retention = load_samples(SAMPLE / "retention.jsonl")
    assert len(evaluation) >= 40
    assert len(retention) >= 20
    assert all(s.meta.get("facts") and s.meta.get("category") for s in evaluation + retention)


def test_every_eval_fact_is_in_its_reference_and_taught_in_training() -> None:
    train_text = (SAMPLE / "train.jsonl").read_text(encoding="utf-8")
    for item in _rows("eval.jsonl"):
        reference = item["messages"][-1]["content"]
        for fact in item["facts"]:
            assert fact in reference, (item["id"], fact)
            assert fact in train_text, (item["id"], fact)


def test_eval_questions_are_never_asked_in_training() -> None:
    asked = {turn["content"].lower() for row in _rows("train.jsonl") for turn in row["messages"] if turn["role"] == "user"}
    for item in _rows("eval.jsonl"):
        question = item["messages"][0]["content"].lower()
        assert not any(question in a for a in asked), item["id"]


def test_the_other_tools_shapes_read_as_the_conversations_they_were_written_from() -> None:
    formats = SAMPLE.parent / "formats"
    source = [s.as_dicts() for s in load_samples(SAMPLE / "train.jsonl")[:40]]
    for name in ("sharegpt.json", "openai-parts.jsonl"):
        assert [s.as_dicts() for s in load_samples(formats / name)] == source, name
    mapped = load_samples(formats / "faq.csv", Reading(columns={"question": "instruction", "answer": "output"}))
    single = [turns for turns in source if [t["role"] for t in turns] == ["user", "assistant"]]
    assert [s.as_dicts() for s in mapped] == single
