"""The audit trail: a chained, append-only record of who did what to a run; `forge-tui audit` finds
the line where it was edited, cut or padded."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

from forge_tui.engine.audit import GENESIS, AuditLog, verify
from tests.helpers import run_cli


def _trail(tmp_path: Path, entries: int = 5) -> Path:
    log = AuditLog(tmp_path / "audit.jsonl")
    for index in range(entries):
        log.append("checkpoint", step=index, adapter_sha256="ab" * 32)
    return log.path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_an_entry_after_a_torn_line_is_kept_on_its_own_line(tmp_path) -> None:
    path = _trail(tmp_path)
    os.truncate(path, path.stat().st_size - 20)  # a writer killed in the middle of its entry
    AuditLog(path).append("runner_started", pid=1)
    last = json.loads(_lines(path)[-1])
    assert last["kind"] == "runner_started"
    assert last["seq"] == 6
    assert verify(path)[1] == [f"{path}:5: not a JSON entry (edited or torn)"]  # the tear is named, nothing else


def test_entries_chain_each_to_the_one_before(tmp_path) -> None:
    path = _trail(tmp_path)
    entries = [json.loads(line) for line in _lines(path)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev"] == GENESIS
    assert all(later["prev"] == earlier["hash"] for earlier, later in itertools.pairwise(entries))
    assert verify(path) == (5, [])


def test_an_edited_entry_is_named_by_its_line(tmp_path) -> None:
    path = _trail(tmp_path)
    lines = _lines(path)
    lines[2] = lines[2].replace('"step": 2', '"step": 7')
    path.write_text("\n".join(lines) + "\n")
    assert verify(path)[1] == [f"{path}:3: entry 3 was changed after it was written (its hash does not match)"]


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(tmp_path) -> None:
    path = _trail(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[1])
    entry["adapter_sha256"] = "cd" * 32
    body = {k: v for k, v in entry.items() if k != "hash"}
    entry["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    lines[1] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    problems = verify(path)[1]
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:3: entry 3 does not follow the entry before it")


def test_removed_inserted_and_torn_lines_are_found(tmp_path) -> None:
    path = _trail(tmp_path)
    lines = _lines(path)
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # entry 3 removed
    assert any(p.startswith(f"{path}:3: entry 4 does not follow") for p in verify(path)[1])
    assert any("entry number 4 where 3 was expected" in p for p in verify(path)[1])
    path.write_text("\n".join([*lines[:4], "{oops", *lines[4:]]) + "\n")
    assert verify(path)[1][0] == f"{path}:5: not a JSON entry (edited or torn)"


def test_a_run_keeps_its_trail_and_the_command_verifies_it(trained, tmp_path) -> None:
    run = trained
    entries = [json.loads(line) for line in _lines(run / "audit.jsonl")]
    kinds = [e["kind"] for e in entries]
    assert kinds[:2] == ["run_created", "runner_started"]
    assert kinds[-1] == "finished"
    assert kinds.count("checkpoint") >= 2
    created = entries[0]
    meta = json.loads((run / "run.json").read_text())
    assert created["config_sha256"] == meta["config_sha256"]
    assert created["dataset_sha256"] == meta["dataset_sha256"]
    assert len(created["model_sha256"]) == 64
    assert created["uid"] >= 0
    assert created["host"]
    assert created["versions"]["torch"]
    assert entries[1]["egress_guard"] is True
    adapter = hashlib.sha256((run / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert entries[-1]["adapter_sha256"] == adapter
    good = run_cli("audit", str(run))
    assert good.returncode == 0
    assert f"{len(entries)} entries, chain intact" in good.stdout
    lines = _lines(run / "audit.jsonl")
    lines[1] = lines[1].replace('"egress_guard": true', '"egress_guard": false')
    (run / "audit.jsonl").write_text("\n".join(lines) + "\n")
    bad = run_cli("audit", str(run), "--json")
    report = json.loads(bad.stdout)
    assert bad.returncode == 2
    assert not report["intact"]
    assert report["problems"][0].startswith(f"{run / 'audit.jsonl'}:2: entry 2 was changed")
