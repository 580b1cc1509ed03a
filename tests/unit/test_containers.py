"""How records are stored: Parquet, Arrow (file and stream), a `datasets` save_to_disk folder (the
fixtures were written by `datasets` 5.2 itself), gzip-compressed JSONL/JSON, a pretty-printed JSON
object; each read in bounded pieces, each problem at FILE:LINE or FILE:row N, the file untouched."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from forge_tui.cli import main
from forge_tui.engine.data import Problem, Reading, Sample, dataset_files, read_dataset
from forge_tui.engine.datacheck import check_dataset

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROWS = [{"conversations": [{"from": "human", "value": f"Interval for pump {i}?"}, {"from": "gpt", "value": f"{i + 1} days."}],
         "system": None if i % 2 else "Plant assistant.", "weight": None} for i in range(40)]


def _read(*paths: Path) -> tuple[list[Sample], list[Problem]]:
    return _read_with(*paths)


def _read_with(*paths: Path, limit: int = Reading().max_record_bytes) -> tuple[list[Sample], list[Problem]]:
    items = list(read_dataset(paths, Reading(max_record_bytes=limit)))
    return [i for i in items if isinstance(i, Sample)], [i for i in items if isinstance(i, Problem)]


def test_parquet_rows_with_nested_turns_read_in_batches_and_problems_name_the_row(tmp_path) -> None:
    rows = [*ROWS[:2], {"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "q again"}],
                        "system": None, "weight": None}, *ROWS[2:]]
    path = tmp_path / "sharegpt.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)  # several row groups
    before = path.read_bytes()
    samples, problems = _read(path)
    assert len(samples) == 40
    assert samples[0].messages[0].content == "Plant assistant."
    assert samples[1].messages[0].role == "user"  # a null system column is no system prompt
    assert samples[-1].line == 41
    assert [str(p).split(": ")[0] for p in problems] == [f"{path}:row 3"]
    assert samples[0].meta == {"weight": None}
    assert path.read_bytes() == before


def test_arrow_files_and_streams(tmp_path) -> None:
    table = pa.Table.from_pylist([{"instruction": f"i{n}", "input": None, "output": f"o{n}"} for n in range(30)])
    stream, file = tmp_path / "stream.arrow", tmp_path / "file.arrow"
    with pa.ipc.new_stream(stream, table.schema) as writer:
        writer.write_table(table, max_chunksize=8)
    with pa.ipc.new_file(file, table.schema) as writer:
        writer.write_table(table, max_chunksize=8)
    samples, problems = _read(stream, file)
    assert problems == []
    assert [s.messages[1].content for s in samples] == [f"o{n}" for n in range(30)] * 2


def test_a_saved_datasetdict_trains_on_its_train_split_and_says_so() -> None:
    folder = FIXTURES / "saved_datasetdict"
    assert [p.relative_to(folder) for p in dataset_files(folder)] == [Path("train/data-00000-of-00001.arrow")]
    report = check_dataset([folder])
    assert report.ok, report.problems
    assert report.samples == 6
    assert report.formats == {"sharegpt": 6}
    assert report.skipped == [f"{folder / 'test'}: another split, not read (a DatasetDict trains on its train split)"]
    assert report.manifest.files[0].container == "arrow"
    split = check_dataset([folder / "test"])  # a split folder on its own reads, metadata left out
    assert split.samples == 1


def test_parquet_written_by_datasets() -> None:
    samples, problems = _read(FIXTURES / "sharegpt_by_datasets.parquet")
    assert problems == []
    assert [m.role for m in samples[0].messages] == ["system", "user", "assistant"]
    assert len(samples) == 6


def test_damaged_columnar_files_are_problems_not_crashes(tmp_path) -> None:
    path = tmp_path / "bad.parquet"
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), good)
    path.write_bytes(good.read_bytes()[:-40])  # the footer is gone
    arrow = tmp_path / "bad.arrow"
    arrow.write_bytes(b"not arrow at all")
    _, problems = _read(path, arrow)
    assert [(p.file, p.line) for p in problems] == [(path, None), (arrow, None)]
    assert problems[0].message.startswith("not a readable Parquet file (")
    assert problems[1].message.startswith("not a readable Arrow file (")


def test_gzip_jsonl_and_json_stream_and_a_truncated_one_stops_at_its_line(tmp_path) -> None:
    lines = [json.dumps({"text": f"log line {n} " + "x" * random.Random(n).randrange(40, 400)}) + "\n" for n in range(3000)]
    whole = tmp_path / "logs.jsonl.gz"
    whole.write_bytes(gzip.compress("".join(lines).encode()))
    array = tmp_path / "array.json.gz"
    array.write_bytes(gzip.compress(json.dumps([{"prompt": "p", "completion": "c"}]).encode()))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[: os.path.getsize(whole) // 2])
    samples, problems = _read(whole, array)
    assert problems == []
    assert len(samples) == 3001
    samples, problems = _read(cut)
    assert 0 < len(samples) < 3000
    (problem,) = problems
    assert problem.line == len(samples) + 1 or problem.message.startswith("truncated last line")
    assert "gzip" in problem.message or "truncated" in problem.message


def test_a_pretty_printed_json_object_is_one_record(write) -> None:
    path = write("one.json", json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
                                        indent=2))
    samples, problems = _read(path)
    assert problems == []
    assert samples[0].line == 1


def test_data_check_names_each_files_format_and_keeps_the_mapping(write, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FORGE_TUI_CACHE_DIR", str(tmp_path / "no-model"))
    folder = tmp_path / "site"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS), folder / "a.parquet")
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(b'{"question": "q", "answer": "a"}\n'))
    assert main(["data", "check", str(folder), "--json"]) == 2
    refused = json.loads(capsys.readouterr().out)
    assert refused["problems"][0]["where"] == f"{folder / 'b.jsonl.gz'}:1"
    code = main(["data", "check", str(folder), "--json", "--map", "question=instruction", "--map", "answer=output"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(f["container"], f["format"], f["samples"]) for f in report["manifest"]["files"]] == [
        ("parquet", "sharegpt", 40), ("jsonl.gz", "alpaca", 1)]
    assert report["manifest"]["columns"] == {"question": "instruction", "answer": "output"}
    assert main(["data", "check", str(folder), "--map", "question=instruction", "--map", "answer=output"]) == 0
    shown = capsys.readouterr().out
    assert f"{folder / 'a.parquet'}: sharegpt (parquet), 40 samples" in shown
    assert "columns     question -> instruction, answer -> output" in shown
    assert main(["data", "check", str(folder), "--map", "question"]) == 2
    assert "--map 'question': expected KEY=FIELD" in capsys.readouterr().err


def test_a_damaged_arrow_file_is_a_problem_in_a_process_that_survives(tmp_path) -> None:
    """Damaged buffers crashed pyarrow's converter (SIGSEGV) before batches were validated: run in a
    child, so a regression fails this test rather than killing the suite."""
    from tests.helpers import run_cli

    table = pa.Table.from_pylist([{"text": f"log line {n} " + "x" * (n % 97)} for n in range(10_000)])
    path = tmp_path / "flipped.arrow"
    with pa.ipc.new_file(path, table.schema) as writer:
        writer.write_table(table, max_chunksize=1000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    result = run_cli("data", "check", str(path), env={"FORGE_TUI_CACHE_DIR": str(tmp_path / "no-model")})
    assert result.returncode == 2, result.stderr
    assert "not a readable Arrow file" in result.stderr
    assert "internal error" not in result.stderr


def test_columnar_values_python_cannot_hold_and_rows_over_the_limit_are_problems_at_their_row(tmp_path) -> None:
    path = tmp_path / "odd.parquet"
    pq.write_table(pa.table({"text": ["fine", "also fine", "x" * 2_000_000],
                             "when": pa.array([0, 253402300800 * 10**7, 0], pa.timestamp("us"))}), path)
    samples, problems = _read_with(path, limit=1024 * 1024)
    assert [s.line for s in samples] == [1]
    assert [(p.line, p.message.split(" (")[0]) for p in problems] == [(2, "a value cannot be read"),
                                                                    (3, "row is larger than 1 MiB; records are limited to that size")]


def test_a_datasets_folder_reads_the_files_its_state_lists_not_its_cache(tmp_path) -> None:
    import shutil

    folder = tmp_path / "saved"
    shutil.copytree(FIXTURES / "saved_datasetdict", folder)
    shutil.copy(folder / "train" / "data-00000-of-00001.arrow", folder / "train" / "cache-1a2b3c4d5e6f7a8b.arrow")
    assert [p.name for p in dataset_files(folder)] == ["data-00000-of-00001.arrow"]


def test_damaged_gzip_is_shown_even_past_the_cap_of_problems(tmp_path) -> None:
    raw = "".join(json.dumps({"text": f"line {n} " + "y" * (n % 50)}) + "\n" for n in range(2000)).encode()
    packed = bytearray(gzip.compress(raw))
    packed[len(packed) // 2] ^= 0x40
    path = tmp_path / "flip.jsonl.gz"
    path.write_bytes(bytes(packed))
    report = check_dataset([path])
    assert any("damaged or truncated gzip data" in p.message for p in report.problems)
