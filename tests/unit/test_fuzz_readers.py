"""Bounded fuzzing of the dataset readers (with the screening), the config loader and the audit
verifier: arbitrary input never raises, never modifies the file, and the commands answer 0 or 2."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forge_tui.cli import main
from forge_tui.config import ConfigError, parse_config
from forge_tui.engine.audit import verify
from forge_tui.engine.datacheck import check_dataset

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "role", "content", "text", "prompt", "completion", "instruction", "output", "x",
                         "conversations", "from", "value", "system", "tools", "tool_calls", "function", "name",
                         "arguments", "type", "weight", "history", "images"]),
        children, max_size=4),
    max_leaves=12,
)


def _check_file(path: Path) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    report = check_dataset([path])
    assert report.ok == (report.problem_count == 0)
    assert all(p.file == path for p in report.problems)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


SUFFIXES = [".jsonl", ".json", ".csv", ".jsonl.gz", ".parquet", ".arrow"]


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    _check_file(path)


@FUZZ
@given(rows=st.lists(json_values, max_size=6), array=st.booleans(), compressed=st.booleans())
def test_arbitrary_json_records(tmp_path: Path, rows: list, array: bool, compressed: bool) -> None:
    text = json.dumps(rows) if array else "".join(json.dumps(r) + "\n" for r in rows)
    path = tmp_path / (("f.json" if array else "f.jsonl") + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())
    _check_file(path)


@FUZZ
@given(rows=st.lists(st.dictionaries(st.sampled_from(["conversations", "messages", "instruction", "output", "text", "x"]),
                                     json_values, min_size=1, max_size=3), min_size=1, max_size=6))
def test_arbitrary_parquet_rows(tmp_path: Path, rows: list) -> None:
    """Rows Parquet can store (pyarrow refuses mixed types in a column or an empty struct: no such file exists)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    try:
        pq.write_table(pa.Table.from_pylist(rows), path)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return
    _check_file(path)


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_config_text(tmp_path: Path, text: str) -> None:
    try:
        parse_config(text, tmp_path / "c.toml")
    except ConfigError as error:
        refused = error
    else:
        return  # text that happens to be a valid config
    assert refused.problems
    assert refused.exit_code == 2


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES), strict=st.booleans())
def test_the_command_answers_0_or_2_and_keeps_the_file(tmp_path: Path, monkeypatch, capsys, data: bytes, suffix: str,
                                                        strict: bool) -> None:
    """`data check` through the CLI's own entry point (screening included): no traceback, exit 0 or 2."""
    monkeypatch.setenv("FORGE_TUI_CACHE_DIR", str(tmp_path / "no-model"))  # token lengths skipped: fast
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    code = main(["data", "check", str(path), *(["--strict"] if strict else [])])
    captured = capsys.readouterr()
    assert code in (0, 2)
    assert "Traceback" not in captured.err
    assert "internal error" not in captured.err
    assert path.read_bytes() == data


@FUZZ
@given(text=st.text(max_size=200))
def test_a_fuzzed_config_file_answers_0_or_2(tmp_path: Path, capsys, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(text.encode("utf-8"))
    code = main(["--config", str(path), "train", "--dry-run", "--dataset", str(tmp_path / "missing.jsonl")])
    captured = capsys.readouterr()
    assert code == 2
    assert "internal error" not in captured.err
    assert path.read_bytes() == text.encode("utf-8")


@FUZZ
@given(lines=st.lists(st.text(max_size=80) | json_values.map(json.dumps), max_size=6))
def test_audit_verification_never_raises(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(line.replace("\n", " ") for line in lines), encoding="utf-8")
    count, problems = verify(path)
    assert count == len(path.read_text(encoding="utf-8").splitlines())
    assert all(isinstance(p, str) for p in problems)
