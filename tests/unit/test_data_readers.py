"""The dataset readers: every accepted shape, every documented kind of bad input."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from forge_tui.engine.data import DEFAULT_READING, DatasetError, Problem, Reading, Sample, load_samples, read_dataset, read_samples
from forge_tui.engine.datacheck import check_dataset
from tests.helpers import run_cli

CHAT = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}


def _jsonl(*rows: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _split(items: list[Sample | Problem]) -> tuple[list[Sample], list[Problem]]:
    return [i for i in items if isinstance(i, Sample)], [i for i in items if isinstance(i, Problem)]


def _read(path: Path, reading: Reading = DEFAULT_READING) -> tuple[list[Sample], list[Problem]]:
    return _split(list(read_samples(path, reading)))


@pytest.mark.parametrize(
    ("row", "fmt", "expected"),
    [
        (CHAT, "chat", [("user", "Q?"), ("assistant", "A.")]),
        ({"instruction": "Do", "input": "this", "output": "Done"}, "alpaca", [("user", "Do\n\nthis"), ("assistant", "Done")]),
        ({"instruction": "Do", "output": "Done"}, "alpaca", [("user", "Do"), ("assistant", "Done")]),
        ({"prompt": "P", "completion": "C"}, "prompt", [("user", "P"), ("assistant", "C")]),
        ({"text": "raw"}, "text", [("assistant", "raw")]),
    ],
)
def test_each_format_normalises_to_chat(write, row, fmt, expected) -> None:
    samples, problems = _read(write("d.jsonl", _jsonl(row)))
    assert problems == []
    assert samples[0].fmt == fmt
    assert [(m.role, m.content) for m in samples[0].messages] == expected


def test_extra_keys_are_kept_as_metadata(write) -> None:
    samples, _ = _read(write("d.jsonl", _jsonl({**CHAT, "facts": ["P-101"], "category": "assets"})))
    assert samples[0].meta == {"facts": ["P-101"], "category": "assets"}


def test_byte_order_mark_is_accepted(write) -> None:
    samples, problems = _read(write("d.jsonl", b"\xef\xbb\xbf" + _jsonl(CHAT).encode()))
    assert problems == []
    assert len(samples) == 1


def test_blank_lines_are_skipped_and_line_numbers_kept(write) -> None:
    samples, problems = _read(write("d.jsonl", "\n" + _jsonl(CHAT) + "   \n" + _jsonl(CHAT)))
    assert problems == []
    assert [s.line for s in samples] == [2, 4]


BAD_CASES = [
    ("malformed.jsonl", _jsonl(CHAT) + "{oops}\n", 2, "malformed JSON"),
    ("utf8.jsonl", b'{"text": "caf\xe9"}\n', 1, "invalid UTF-8"),
    ("nul.jsonl", _jsonl(CHAT) + '{"text": "a\x00b"}\n', 2, "NUL byte"),
    ("truncated.jsonl", _jsonl(CHAT) + '{"messages": [{"role": "us', 2, "truncated last line"),
    ("missing.jsonl", _jsonl({"instruction": "x"}), 1, "missing field 'output'"),
    ("empty-field.jsonl", _jsonl({"prompt": "p", "completion": "  "}), 1, "'completion' is empty"),
    ("not-string.jsonl", _jsonl({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}), 1,
     "messages[0].content is a number"),
    ("role.jsonl", _jsonl({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "a"}]}), 1,
     "messages[0].role is 'wizard'"),
    ("no-assistant.jsonl", _jsonl({"messages": [{"role": "user", "content": "x"}]}), 1, "no assistant turn"),
    ("mixed.jsonl", _jsonl(CHAT, {"text": "t"}), 2, "mixed formats"),
    ("unknown.jsonl", _jsonl({"question": "q"}), 1, "record has keys [question]"),
    ("scalar.jsonl", "42\n", 1, "record is a number"),
    ("columns.csv", "foo,bar\n1,2\n", 2, "record has keys [bar, foo]"),
    ("empty-cell.csv", "prompt,completion\np,\n", 2, "'completion' is empty"),
    ("array.json", '[\n {"text": "a"},\n {"text": 7}\n]\n', 3, "'text' is a number"),
    ("open-array.json", '[\n {"text": "a"},\n', 3, "truncated JSON array"),
]


@pytest.mark.parametrize(("name", "content", "line", "fragment"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_file_and_line_and_leaves_file_alone(write, name, content, line, fragment) -> None:
    path = write(name, content)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    _, problems = _read(path)
    assert any(p.line == line and fragment in p.message and p.file == path for p in problems), problems
    assert f"{path}:{line}: " in str(next(p for p in problems if p.line == line))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_empty_file_is_a_problem(write) -> None:
    _, problems = _read(write("empty.jsonl", ""))
    assert [p.message for p in problems] == ["no records: the file is empty"]


def test_every_problem_is_reported_not_only_the_first(write) -> None:
    rows = "".join("{bad}\n" if i % 2 else json.dumps(CHAT) + "\n" for i in range(40))
    samples, problems = _read(write("many.jsonl", rows))
    assert len(samples) == 20
    assert [p.line for p in problems] == list(range(2, 41, 2))


def test_an_oversized_line_is_reported_with_bounded_memory(write) -> None:
    huge = '{"text": "' + "x" * (24 * 1024 * 1024) + '"}\n'
    path = write("huge.jsonl", huge + _jsonl({"text": "after"}))
    tracemalloc.start()
    samples, problems = _read(path, Reading(max_record_bytes=1024 * 1024))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [p.line for p in problems] == [1]
    assert "longer than 1 MiB" in problems[0].message
    assert [s.line for s in samples] == [2]  # reading went on after the long line
    assert peak < 8 * 1024 * 1024


def test_json_array_elements_carry_their_start_line(write) -> None:
    content = '[\n  {"prompt": "a",\n   "completion": "b"},\n  {"prompt": "c", "completion": "d"}\n]'
    samples, problems = _read(write("a.json", content))
    assert problems == []
    assert [s.line for s in samples] == [2, 4]


def test_json_array_streams_across_chunk_boundaries(write) -> None:
    rows = [{"text": f"sample {i} " + "y" * 3000} for i in range(800)]  # ~2.4 MB, several 1 MiB chunks
    samples, problems = _read(write("big.json", json.dumps(rows, indent=1)))
    assert problems == []
    assert len(samples) == 800
    assert samples[-1].messages[0].content.startswith("sample 799")


def test_csv_multiline_fields_and_start_lines(write) -> None:
    samples, problems = _read(write("d.csv", 'instruction,input,output\n"two\nlines",,ok\nsecond,ctx,fine\n'))
    assert problems == []
    assert [s.line for s in samples] == [2, 4]
    assert samples[1].messages[0].content == "second\n\nctx"


def test_folder_reads_every_supported_file(tmp_path, write) -> None:
    write("set/a.jsonl", _jsonl(CHAT))
    write("set/b.csv", "text\nhello\n")
    write("set/notes.txt", "ignored")
    items = list(read_dataset([tmp_path / "set"]))
    assert sorted(s.file.name for s in items if isinstance(s, Sample)) == ["a.jsonl", "b.csv"]


def test_missing_path_is_a_problem(tmp_path) -> None:
    (problem,) = list(read_dataset([tmp_path / "nope.jsonl"]))
    assert isinstance(problem, Problem)
    assert "no such file" in problem.message


def test_load_samples_raises_with_every_problem(write) -> None:
    path = write("d.jsonl", "{x}\n{y}\n")
    with pytest.raises(DatasetError) as caught:
        load_samples(path)
    assert f"{path}:1:" in str(caught.value)
    assert f"{path}:2:" in str(caught.value)
    assert caught.value.exit_code == 2


def test_telemetry_recordings_are_not_offered_as_datasets() -> None:
    from forge_tui.engine.data import discover_datasets
    from tests.helpers import ROOT

    found = [p.relative_to(ROOT / "sample_data").as_posix() for p in discover_datasets([ROOT / "sample_data"])]
    assert found == ["formats/faq.csv", "formats/openai-parts.jsonl", "formats/sharegpt.json", "screening-demo/train.jsonl",
                     "waterworks/eval.jsonl", "waterworks/retention.jsonl", "waterworks/train.jsonl"]


def test_a_fifo_is_refused_at_once_and_a_folder_skips_it(tmp_path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    fifo = folder / "data.jsonl"
    os.mkfifo(fifo)  # opening it would wait for a writer that never comes
    (folder / "ok.jsonl").write_text('{"text": "pump P-101 is running"}\n')
    (problem,) = list(read_dataset([fifo]))
    assert isinstance(problem, Problem)
    assert str(problem) == f"{fifo}: a FIFO, not a regular file or folder: not read (it could block or never end)"
    (sample,) = list(read_dataset([folder]))  # the FIFO is left out of the folder, no problem raised
    assert isinstance(sample, Sample)
    assert sample.messages[0].content == "pump P-101 is running"
    assert check_dataset([folder]).skipped == [f"{fifo}: a FIFO, not read"]
    refused = run_cli("data", "check", str(fifo), "--json")  # on the command line: before anything loads
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"] == f"{fifo}: a FIFO, not a regular file or folder: not read (it could block or never end)"
    dry = run_cli("train", "--dry-run", "--dataset", str(fifo), "--json")
    assert dry.returncode == 2
    assert f"{fifo}: a FIFO" in " ".join(json.loads(dry.stdout)["problems"])
