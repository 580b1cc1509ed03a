"""What state a run is in, read from its files and the liveness of the process holding it.

`RunStatus` is the record `forge-tui runs --json` prints and the console's Runs, Monitor and Compare
screens read: one definition for every reader.
"""

from __future__ import annotations

import fcntl
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forge_tui.config import Config
from forge_tui.engine.checkpoint import latest_checkpoint
from forge_tui.engine.events import Record, read_events
from forge_tui.engine.runs import RunDir, has_final_adapter, runs_root
from forge_tui.engine.telemetry.record import FILE as TELEMETRY_FILE
from forge_tui.engine.telemetry.record import RunRecord, run_record

TERMINAL = {"finished": "finished", "error": "failed", "stopped": "stopped"}
LIVE = ("running", "paused")


@dataclass(frozen=True)
class BenchSummary:
    """The last benchmark's composites (0-100) and the 95% interval of their change."""

    base: float
    tuned: float
    delta: float
    ci95: list[float]
    result: str            # RUN/bench/result.json

    @classmethod
    def from_event(cls, event: Record) -> BenchSummary:
        return cls(base=event["base"], tuned=event["tuned"], delta=event["delta"], ci95=list(event["ci95"]),
                   result=event["result"])


@dataclass(frozen=True)
class RunStatus:
    """A run's state and headline numbers.

    state: created | running | paused | benchmarking | finished | failed | stopped | interrupted
    (the runner died without a last word) | unreadable (its files could not be read: `error` says why).
    """

    name: str
    path: str
    state: str
    preset: str | None = None
    created: float | None = None
    pid: int | None = None                 # the runner's, while running or paused
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    eval_loss: float | None = None
    last_checkpoint: str | None = None
    error: str | None = None               # failed: the runner's last error
    adapter: str | None = None             # finished: the final adapter
    reason: str | None = None              # paused, or stopped by the thermal guard: why
    bench: BenchSummary | None = None
    record: RunRecord | None = None        # time, energy and the thermal story (telemetry/record.py)
    estimate_s: float | None = None        # what the launch said the run would take (eta.py)

    @property
    def run(self) -> RunDir:
        return RunDir(Path(self.path))

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "record": self.record.to_json() if self.record else None}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RunStatus:
        bench, story = record.get("bench"), record.get("record")
        fields = {key: value for key, value in record.items() if key in cls.__dataclass_fields__}
        return cls(**{**fields, "bench": BenchSummary(**bench) if bench else None,
                      "record": RunRecord.from_json(story) if story else None})


def runner_pid(run: RunDir) -> int | None:
    try:
        return int(run.lock_file.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def is_running(run: RunDir) -> bool:
    """Whether a live runner holds the run's lock (probing the lock, not trusting a pid file)."""
    if not run.lock_file.exists():
        return False
    with open(run.lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _state(run: RunDir, events: list[Record]) -> tuple[str, Record | None]:
    """The run's state, and the last pause/resume/start event (what a pause's reason comes from).
    Finished is decided by the final adapter (runs.has_final_adapter), as for every command."""
    latest = next((e for e in reversed(events) if e["type"] in TERMINAL or e["type"] == "run_started"), None)
    pause = next((e for e in reversed(events) if e["type"] in ("paused", "resumed", "run_started")), None)
    finished = has_final_adapter(run)
    if is_running(run):
        if finished and latest is not None and latest["type"] == "finished":
            return "benchmarking", pause  # only a benchmark works on a finished run (not the runner writing its end)
        return ("paused" if pause and pause["type"] == "paused" else "running"), pause
    if finished:
        return "finished", pause
    if latest is None:
        return "created", pause
    # a `finished` event without its adapter (removed since): the run resumes from its last checkpoint
    return TERMINAL.get(latest["type"], "interrupted") if latest["type"] != "finished" else "interrupted", pause


def run_status(run: RunDir) -> RunStatus:
    """State and headline numbers of a run, from its files and process liveness."""
    events = read_events(run.events)
    last_of = {e["type"]: e for e in events}
    state, pause = _state(run, events)
    step = last_of.get("step", {})
    checkpoint = latest_checkpoint(run.checkpoints)
    meta = run.meta()
    bench = last_of.get("bench_result")
    return RunStatus(
        name=run.name, path=str(run.path), state=state, preset=meta.get("preset"), created=meta.get("created"),
        pid=runner_pid(run) if state in LIVE else None,
        step=step.get("step", 0), total_steps=step.get("total_steps", last_of.get("run_started", {}).get("total_steps")),
        loss=step.get("loss"), eval_loss=last_of.get("eval", {}).get("eval_loss"),
        last_checkpoint=str(checkpoint) if checkpoint else None,
        error=last_of.get("error", {}).get("message") if state == "failed" else None,
        adapter=str(run.adapter) if state == "finished" else None,
        reason=_state_reason(state, pause, last_of.get("stopped")),
        bench=BenchSummary.from_event(bench) if bench else None,
        record=_record(run, events) if "run_started" in last_of else None,
        estimate_s=next((e.get("estimate_seconds") for e in events if e["type"] == "run_started"), None),
    )


_RECORDS: dict[str, tuple[tuple[float, ...], RunRecord | None]] = {}


def _record(run: RunDir, events: list[Record]) -> RunRecord | None:
    """The run's record, read again only when its telemetry or event log changed (Runs asks every
    few seconds, and a long run's record is megabytes); None when its rows cannot be read."""
    stamps = []
    for path in (run.path / TELEMETRY_FILE, run.events):
        try:
            found = path.stat()
            stamps += [found.st_size, found.st_mtime]
        except OSError:
            stamps += [-1.0, -1.0]
    key, cached = tuple(stamps), _RECORDS.get(str(run.path))
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        record: RunRecord | None = run_record(run.path, events)
    except (ValueError, TypeError, AttributeError, KeyError):  # a row from another version
        record = None
    _RECORDS[str(run.path)] = (key, record)
    return record


def _state_reason(state: str, pause: Record | None, stopped: Record | None) -> str | None:
    """Why a run is paused, or stopped by the thermal guard (an operator's stop needs no reason)."""
    if state == "paused" and pause:
        return str(pause["reason"])
    if state == "stopped" and stopped and stopped.get("reason", "operator") != "operator":
        return str(stopped["reason"])
    return None


def list_runs(config: Config) -> list[RunStatus]:
    """Every run under the runs folder, oldest name first; one whose files cannot be read is listed
    as unreadable with the reason."""
    root = runs_root(config)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if (path / "run.json").is_file():
            try:
                found.append(run_status(RunDir(path)))
            except (OSError, ValueError, KeyError, TypeError) as exc:  # a file damaged or from another version
                found.append(RunStatus(name=path.name, path=str(path), state="unreadable", error=f"{type(exc).__name__}: {exc}"))
    return found


def newest(statuses: list[RunStatus]) -> list[RunStatus]:
    """The statuses newest first (by creation time; an unreadable run's is unknown: last)."""
    return sorted(statuses, key=lambda s: s.created or 0.0, reverse=True)
