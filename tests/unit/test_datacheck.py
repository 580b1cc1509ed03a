"""`check_dataset`: statistics, duplicates, the content-hash split and the manifest."""

from __future__ import annotations

import json

from forge_tui.engine.data import Sample, read_samples
from forge_tui.engine.datacheck import check_dataset, in_eval_split, length_stats, sample_key


def _chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def _rows(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_duplicates_are_found_with_both_locations(write) -> None:
    path = write("d.jsonl", _rows([_chat("a", "b"), _chat("c", "d"), _chat("a", "b")]))
    report = check_dataset([path])
    assert report.ok
    assert report.samples == 3
    assert report.duplicate_count == 1
    assert report.duplicates[0].where == f"{path}:3"
    assert report.duplicates[0].first == f"{path}:1"


def test_duplicate_key_ignores_metadata_but_not_roles() -> None:
    from pathlib import Path

    from forge_tui.engine.data import Message, Sample

    key = sample_key
    base = Sample((Message("user", "q"), Message("assistant", "a")), "chat", Path("f"), 1, {"id": 1})
    same = Sample(base.messages, "chat", Path("g"), 9, {"id": 2})
    swapped = Sample((Message("assistant", "q"), Message("user", "a")), "chat", Path("f"), 1)
    assert key(base) == key(same)
    assert key(base) != key(swapped)


def test_split_is_stable_under_reordering_and_close_to_the_fraction(write) -> None:
    rows = [_chat(f"question {i}", f"answer {i}") for i in range(2000)]
    forward = check_dataset([write("a.jsonl", _rows(rows))], eval_fraction=0.1)
    backward = check_dataset([write("b.jsonl", _rows(rows[::-1]))], eval_fraction=0.1)
    assert forward.split == backward.split
    assert 150 < forward.split["eval"] < 250
    samples = [s for s in read_samples(write("c.jsonl", _rows(rows))) if isinstance(s, Sample)]
    evals = {s.messages[0].content for s in samples if in_eval_split(sample_key(s), 0.1)}
    assert len(evals) == forward.split["eval"]


def test_no_eval_split_when_fraction_is_zero(write) -> None:
    report = check_dataset([write("a.jsonl", _rows([_chat(str(i), "x") for i in range(50)]))], eval_fraction=0.0)
    assert report.split == {"train": 50, "eval": 0}


def test_manifest_changes_with_content_not_with_folder(tmp_path, write) -> None:
    rows = _rows([_chat("a", "b")])
    one = check_dataset([write("x/data.jsonl", rows)]).manifest
    two = check_dataset([write("y/data.jsonl", rows)]).manifest
    three = check_dataset([write("z/data.jsonl", rows + _rows([_chat("c", "d")]))]).manifest
    assert one.sha256 == two.sha256 != three.sha256
    assert one.files[0].samples == 1
    assert one.format == "chat"
    assert len(one.files[0].sha256) == 64


def test_problems_are_capped_but_counted(write) -> None:
    report = check_dataset([write("bad.jsonl", "{x}\n" * 120)], error_cap=10)
    assert not report.ok
    assert report.problem_count == 120
    assert len(report.problems) == 10


def test_token_lengths_and_truncation_use_the_given_counter(write) -> None:
    rows = [_chat("q", "a" * n) for n in (1, 5, 10, 50, 100)]
    report = check_dataset([write("d.jsonl", _rows(rows))], max_seq_len=20, token_length=lambda s: len(s.messages[1].content))
    assert (report.lengths.min, report.lengths.max, report.lengths.truncated) == (1, 100, 2)
    assert sum(count for _, _, count in report.lengths.histogram) == 5


def test_length_stats_of_a_single_value() -> None:
    stats = length_stats([7], 10)
    assert (stats.min, stats.median, stats.p95, stats.max) == (7, 7, 7, 7)
    assert stats.histogram == ((7, 7, 1),)
