"""A process that owns a run: the trainer and the benchmark each hold the run's lock, append to its
event log and audit trail, record the outgoing connections the egress guard refuses, and leave a
last word in the log when they fail. `owning` does all of that once for both; `ensure_resumable`
refuses a resume that could not continue the run as it was."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forge_tui.engine import events as ev
from forge_tui.engine.audit import AuditLog, record_event
from forge_tui.engine.events import read_events
from forge_tui.engine.fsutil import file_sha256
from forge_tui.engine.runs import RunDir, config_sha256, dataset_manifest
from forge_tui.engine.status import is_running, run_status, runner_pid
from forge_tui.errors import BadInput
from forge_tui.offline import Attempt, on_refused

Echo = Callable[[ev.Record], None]


class RunnerLock:
    """An exclusive flock on runner.lock for as long as the runner lives (released by the kernel on
    any exit, kill -9 included, so a stale lock cannot block a resume)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._handle = open(run.lock_file, "a+")  # noqa: SIM115 - held for the runner's life
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise BadInput(f"{run.path}: another runner is working on this run (pid {runner_pid(run)})") from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()))
        self._handle.flush()

    def release(self) -> None:
        self._handle.close()


class RunOwner:
    """What the owning process says goes to the event log, the audit trail and `echo` (the CLI's
    printer), in that order."""

    def __init__(self, run: RunDir, log: ev.EventLog, echo: Echo | None) -> None:
        self.run = run
        self.log = log
        self.audit = AuditLog(run.audit)
        self.echo = echo

    def emit(self, event: ev.Event) -> ev.Record:
        record = self.log.emit(event)
        record_event(self.audit, record)
        if self.echo:
            self.echo(record)
        return record

    def refused(self, attempt: Attempt) -> None:
        """An outgoing connection from inside the run (a library phoning home): in the audit trail,
        and in the event log for the operator."""
        self.audit.append("egress_refused", **attempt.to_json())
        self.emit(ev.RunWarning(message=f"refused an outgoing connection to {attempt.target} (from {attempt.caller})"))


def _last_word(owner: RunOwner, failure: Callable[[BaseException], ev.Event], exc: Exception) -> None:
    """Record why the process failed; if even that cannot be written (the disk that failed it is
    full), say so on stderr and let the original error through."""
    try:
        owner.emit(failure(exc))
    except Exception as unwritten:  # noqa: BLE001 - the original error is the one to report
        print(f"forge-tui: the error could not be recorded in {owner.run.events}: {unwritten}", file=sys.stderr)


@contextmanager
def owning(run: RunDir, failure: Callable[[BaseException], ev.Event], echo: Echo | None = None) -> Iterator[RunOwner]:
    """Own `run` for the block: its lock (BadInput when another process holds it), its log and trail.
    An Exception leaving the block is recorded as `failure(exc)` first; an interrupt from the
    keyboard or SystemExit is not a failure (the log ends without a last word and the run reads as
    interrupted)."""
    lock = RunnerLock(run)
    log = ev.EventLog(run.events)
    owner = RunOwner(run, log, echo)
    stop_watching = on_refused(owner.refused)
    try:
        yield owner
    except Exception as exc:
        _last_word(owner, failure, exc)
        raise
    finally:
        stop_watching()
        log.close()
        lock.release()


def ensure_resumable(run: RunDir) -> None:
    """Refuse a resume that cannot continue this run as it was: one already going or finished, one
    whose checkpoints are all gone, or whose dataset, rehearsal set or config changed since; and a
    fleet's run (its rounds are the fleet's, not this machine's to train alone)."""
    if (run.path / "fleet").is_dir():
        raise BadInput(f"{run.path}: a fleet run; start a new fleet (`forge-tui fleet local` or `fleet serve`) instead")
    if is_running(run):
        raise BadInput(f"{run.path}: already running (pid {runner_pid(run)})")
    status = run_status(run)
    if status.state == "finished":
        raise BadInput(f"{run.path}: already finished; its adapter is in {run.adapter}")
    saved = [e["path"] for e in read_events(run.events) if e["type"] == "checkpoint"]
    if saved and status.last_checkpoint is None:
        raise BadInput(f"{run.path}: no complete checkpoint left (missing or damaged: {', '.join(Path(p).name for p in saved[-3:])}); "
                       "refusing to start over on top of this run's history")
    _require_same_data(run)
    sections = json.loads((run.path / "config.json").read_text())["sections"]
    if config_sha256(sections) != run.meta()["config_sha256"]:
        raise BadInput(f"{run.path}/config.json changed since the run started (hash differs); refusing to resume")


def _require_same_samples(run: RunDir, recorded: dict[str, Any], current: dict[str, Any]) -> None:
    """The same files must also read as the same samples (the split and the batch order follow from
    them): a run recorded before samples were fingerprinted cannot promise that, so it is refused."""
    if "samples_sha256" not in recorded:
        raise BadInput(f"{run.path}: started by an earlier Forge, which did not fingerprint the samples it read; this version "
                       "reads some records differently (alpaca system/history, conversations end at their last answer), so an "
                       "exact resume cannot be promised: start a new run")
    if current["samples_sha256"] != recorded["samples_sha256"]:
        raise BadInput(f"{run.path}: the dataset's files are unchanged but read as other samples now (the column mapping or "
                       "the reader differs); refusing to resume")


def _require_same_data(run: RunDir) -> None:
    dataset = run.dataset()
    path = Path(dataset["path"])
    if not path.exists():
        raise BadInput(f"{run.path}: its dataset {path} is gone")
    recorded = dataset["manifest"]
    current = dataset_manifest(path, run.config())["manifest"]
    if current["sha256"] != recorded["sha256"]:
        changed = [f"{c['path']}: sha256 {r['sha256'][:12]} -> {c['sha256'][:12]}, samples {r['samples']} -> {c['samples']}"
                   for r, c in zip(recorded["files"], current["files"], strict=False) if r["sha256"] != c["sha256"]]
        if len(recorded["files"]) != len(current["files"]):
            changed.append(f"files {len(recorded['files'])} -> {len(current['files'])}")
        raise BadInput(f"{run.path}: the dataset changed since the run started; refusing to resume:\n  " + "\n  ".join(changed))
    _require_same_samples(run, recorded, current)
    rehearsal = dataset.get("rehearsal")
    if rehearsal and (not Path(rehearsal["path"]).is_file() or file_sha256(Path(rehearsal["path"])) != rehearsal["sha256"]):
        raise BadInput(f"{run.path}: its rehearsal set {rehearsal['path']} changed or is gone; refusing to resume")
