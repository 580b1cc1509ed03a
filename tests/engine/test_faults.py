"""What the machine does to a run, and what the operator is told: a disk that fills, a read-only
destination, a damaged checkpoint, a torn `finished` line, an export killed half-way. None of these
is a bug of ours: each is said in words, with where, and nothing half-written is left behind.

The full and read-only disks are real: a small tmpfs mounted in a private mount namespace
(`unshare -rm`, as the offline test uses `unshare -rn`)."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forge_tui.config import Config, RunsConfig
from forge_tui.engine import checkpoint
from forge_tui.engine import events as ev
from forge_tui.engine.events import read_events
from forge_tui.engine.runner import owning
from forge_tui.engine.runs import RunDir, open_run
from forge_tui.engine.status import list_runs
from forge_tui.errors import ForgeError
from tests.helpers import ROOT, run_cli


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """`script` (sh) in a private mount namespace, where it may mount what it likes."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed for this test")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, check=False)


def _forge(*args: str | Path) -> str:
    return shlex.join([sys.executable, "-m", "forge_tui", *map(str, args)])


def test_a_disk_too_full_for_a_checkpoint_is_said_with_the_step_and_leaves_nothing(tiny_config, tmp_path) -> None:
    disk, kept = tmp_path / "small-disk", tmp_path / "kept"
    disk.mkdir()
    done = _in_namespace(f"mount -t tmpfs -o size=192k tmpfs {disk} && "
                         f"{_forge('--config', tiny_config, 'train', '--run-dir', disk / 'run')}; code=$?; "
                         f"cp -r {disk / 'run'} {kept}; exit $code")
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stderr
    assert f"no space left on the disk holding {disk / 'run' / 'checkpoints'} for the checkpoint at step 2" in done.stderr
    error = read_events(kept / "events.jsonl")[-1]
    assert error["type"] == "error"
    assert error["step"] == 2
    assert not list((kept / "checkpoints").glob(".tmp-*"))


def test_a_write_that_fails_for_space_is_cleaned_up_and_explained(trained, monkeypatch) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = open_run(trained).config()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(config.model.name), trained / "adapter",
                                      is_trainable=True)

    def full(staging: Path, *_args: object) -> None:
        (staging / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write", full)
    state = checkpoint.read_state(trained / "checkpoints" / "step-000008")
    with pytest.raises(ForgeError, match=r"no space left on the disk holding .* for the checkpoint at step 9"):
        checkpoint.save_checkpoint(trained / "checkpoints", 9, model, None, state, keep=10)
    assert not (trained / "checkpoints" / ".tmp-step-000009").exists()
    assert not (trained / "checkpoints" / "step-000009").exists()


def test_an_export_to_a_read_only_disk_is_refused_before_the_model_loads(trained, tiny_config, tmp_path) -> None:
    disk = tmp_path / "read-only"
    disk.mkdir()
    done = _in_namespace(f"mount -t tmpfs tmpfs {disk} && mount -o remount,ro {disk} && "
                         f"{_forge('--config', tiny_config, 'export', trained, '--merged', disk / 'merged')}")
    assert done.returncode == 2, done.stderr
    assert f"{disk}: cannot write the merged model here: Read-only file system" in done.stderr
    assert "internal error" not in done.stderr


def test_a_killed_exports_leftovers_are_cleaned_by_the_next(trained, tiny_config, tmp_path) -> None:
    dead = tmp_path / ".tmp-merged-999999"  # the pid of an export that was killed: no such process now
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"x" * 1000)
    live = tmp_path / f".tmp-merged-{os.getpid()}"  # a live writer's: left alone
    live.mkdir()
    done = run_cli("--config", str(tiny_config), "export", str(trained), "--merged", str(tmp_path / "merged"))
    assert done.returncode == 0, done.stderr
    assert not dead.exists()
    assert live.exists()
    assert "kernels" not in done.stderr + done.stdout  # no library chatter for the operator


def test_a_damaged_checkpoint_is_named_when_a_resume_passes_it_over(trained, tiny_config) -> None:
    (trained / "checkpoints" / "step-000008" / "optimizer.pt").write_bytes(b"torn")
    shutil.rmtree(trained / "adapter")  # as if the run had been killed before its end
    events = trained / "events.jsonl"
    events.write_text("".join(line for line in events.read_text().splitlines(keepends=True) if '"finished"' not in line))
    (row,) = json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)
    assert row["state"] == "interrupted"
    resumed = run_cli("--config", str(tiny_config), "resume", str(trained))
    assert resumed.returncode == 0, resumed.stderr
    said = ("checkpoint step-000008 is damaged (optimizer.pt changed since it was written): not used; "
            "resuming from step-000006")
    assert f"warning: {said}" in resumed.stdout
    assert said in [e["message"] for e in read_events(events) if e["type"] == "warning"]
    assert [e["start_step"] for e in read_events(events) if e["type"] == "run_started"][-1] == 6


def test_a_torn_finished_line_does_not_unfinish_a_run(trained, tiny_config) -> None:
    events = trained / "events.jsonl"
    os.truncate(events, events.stat().st_size - 12)  # the `finished` event torn by a kill; the adapter is in place
    (row,) = json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)
    assert (row["state"], row["adapter"]) == ("finished", str(trained / "adapter"))  # as `bench` and `export` see it
    refused = run_cli("--config", str(tiny_config), "resume", str(trained))
    assert refused.returncode == 2
    assert "already finished" in refused.stderr


def test_a_run_opened_by_a_relative_path_records_absolute_ones(trained, monkeypatch) -> None:
    monkeypatch.chdir(trained.parent)
    run = open_run(Path(trained.name))
    assert run.path == trained
    assert run.adapter.is_absolute()


def test_a_failure_that_cannot_be_recorded_lets_the_original_error_through(tmp_path, capsys) -> None:
    (tmp_path / "run.json").write_text("{}")
    run = RunDir(tmp_path)

    def unrecordable(exc: BaseException) -> ev.Event:
        raise OSError(errno.ENOSPC, "No space left on device")

    def work() -> None:
        raise RuntimeError("the real trouble")

    with pytest.raises(RuntimeError, match="the real trouble"), owning(run, unrecordable):
        work()
    assert "the error could not be recorded" in capsys.readouterr().err


def test_a_run_whose_events_are_damaged_is_listed_as_unreadable(tmp_path) -> None:
    run = tmp_path / "runs" / "odd"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"name": "odd", "created": 1.0}))
    (run / "events.jsonl").write_text('{"type": "bench_result", "time": 1}\n')  # fields missing
    (row,) = list_runs(Config(runs=RunsConfig(dir=str(tmp_path / "runs"))))
    assert row.state == "unreadable"
    assert row.error.startswith("KeyError")
