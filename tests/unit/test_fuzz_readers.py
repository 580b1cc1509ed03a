"""Bounded fuzzing of the dataset readers and the config loader: arbitrary bytes never raise, never
modify the file, and `data check` answers 0 or 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forge_tui.config import ConfigError, parse_config
from forge_tui.engine.datacheck import check_dataset

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "role", "content", "text", "prompt", "completion", "instruction", "output", "x"]),
        children, max_size=4),
    max_leaves=12,
)


def _check_file(path: Path) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    report = check_dataset([path])
    assert report.ok == (report.problem_count == 0)
    assert all(p.file == path for p in report.problems)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_arbitrary_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    _check_file(path)


@FUZZ
@given(rows=st.lists(json_values, max_size=6), array=st.booleans())
def test_arbitrary_json_records(tmp_path: Path, rows: list, array: bool) -> None:
    path = tmp_path / ("f.json" if array else "f.jsonl")
    path.write_text(json.dumps(rows) if array else "".join(json.dumps(r) + "\n" for r in rows))
    _check_file(path)


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_config_text(tmp_path: Path, text: str) -> None:
    try:
        parse_config(text, tmp_path / "c.toml")
    except ConfigError as error:
        assert error.problems and error.exit_code == 2
