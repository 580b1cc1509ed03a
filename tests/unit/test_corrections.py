"""Operator corrections: appended whole as chat samples the readers take, with provenance, an audit
entry per correction, and refusals that leave the file as it was."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from forge_tui.config import Config, DataConfig
from forge_tui.engine.audit import verify
from forge_tui.engine.corrections import Correction, corrections_folder, save_correction
from forge_tui.engine.data import Sample, read_dataset
from forge_tui.engine.runs import RunDir
from forge_tui.errors import BadInput

QUESTION = ({"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Which pump feeds the north reservoir?"})


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FORGE_TUI_DATA_DIR")
    return Config(data=DataConfig(dirs=(str(tmp_path / "plant-data"), str(tmp_path / "other"))))


def test_a_correction_is_a_chat_sample_with_provenance_and_an_audit_entry(config: Config, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    path, line = save_correction(config, run, Correction(QUESTION, "Pump 7.", "Pump P-101 feeds it.", "chat"))
    assert (path, line) == (tmp_path / "plant-data" / "corrections.jsonl", 1)  # the first data folder, created
    second = save_correction(config, None, Correction(QUESTION[1:], "No idea.", "P-101.", "benchmark item eval-3"))
    assert second == (path, 2)
    samples = [s for s in read_dataset([path]) if isinstance(s, Sample)]
    assert [s.fmt for s in samples] == ["chat", "chat"]
    assert [m.content for m in samples[0].messages] == ["Answer briefly.", "Which pump feeds the north reservoir?", "Pump P-101 feeds it."]
    record = json.loads(path.read_text().splitlines()[0])
    assert record["provenance"]["run"] == "run"
    assert record["provenance"]["origin"] == "chat"
    assert record["provenance"]["rejected"] == "Pump 7."
    assert record["provenance"]["time"].endswith("+00:00")
    entries = [json.loads(line) for line in run.audit.read_text().splitlines()]
    assert [(e["kind"], e["line"], e["origin"]) for e in entries] == [("correction", 1, "chat")]  # the run-less one is not in it
    assert entries[0]["sha256"] == hashlib.sha256(path.read_text().splitlines()[0].encode()).hexdigest()
    assert verify(run.audit) == (1, [])


def test_a_torn_last_line_is_ended_before_the_next_correction(config: Config, tmp_path: Path) -> None:
    folder = tmp_path / "plant-data"
    folder.mkdir()
    (folder / "corrections.jsonl").write_text('{"messages": [')
    path, line = save_correction(config, None, Correction(QUESTION, "x", "P-101.", "chat"))
    assert line == 2
    problems = [p for p in read_dataset([path]) if not isinstance(p, Sample)]
    assert [p.line for p in problems] == [1]  # only the torn fragment; the correction reads whole


@pytest.mark.parametrize(("correction", "message"), [
    (Correction(QUESTION, "Pump 7.", "  ", "chat"), "empty"),
    (Correction(QUESTION, "Pump 7.", " Pump 7.\n", "chat"), "unchanged"),
    (Correction(QUESTION[:1], "Pump 7.", "P-101", "chat"), "needs the question"),
])
def test_refusals_write_nothing(config: Config, tmp_path: Path, correction: Correction, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        save_correction(config, None, correction)
    assert not (tmp_path / "plant-data" / "corrections.jsonl").exists()


def test_the_folder_without_data_folders_is_the_user_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FORGE_TUI_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert corrections_folder(Config()) == tmp_path / "forge-tui" / "datasets"
    monkeypatch.setenv("FORGE_TUI_DATA_DIR", str(tmp_path / "elsewhere"))
    assert corrections_folder(replace(Config(), data=DataConfig(dirs=("x",)))) == tmp_path / "elsewhere"
