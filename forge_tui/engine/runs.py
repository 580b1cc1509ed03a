"""Run directories, the runner lock, run states, the detached runner and stop requests.

RUN_DIR/
  run.json          name, creation time, preset, config and dataset hashes
  config.json       the resolved config (every section, every value)
  dataset.json      the dataset path and its SHA-256 manifest
  events.jsonl      the event log (see events.py)
  checkpoints/      step-NNNNNN/ folders (see checkpoint.py)
  adapter/          the final adapter in PEFT format (safetensors)
  runner.lock       held (flock) by the live runner; holds its pid
  runner.log        the detached runner's stdout/stderr
  stop              present while a stop is requested
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_data_path

from forge_tui.config import Config, config_from_sections
from forge_tui.engine.checkpoint import latest_checkpoint
from forge_tui.engine.data import DatasetError, load_samples
from forge_tui.engine.datacheck import check_dataset, file_sha256
from forge_tui.engine.events import read_events
from forge_tui.engine.audit import AuditLog, versions, who
from forge_tui.engine.models import model_sha256, resolve_model
from forge_tui.errors import BadInput

TERMINAL = {"finished": "finished", "error": "failed", "stopped": "stopped"}


def runs_root(config: Config) -> Path:
    if config.runs.dir:
        return Path(config.runs.dir).expanduser()
    override = os.environ.get("FORGE_TUI_RUNS_DIR")
    return Path(override) if override else user_data_path("forge-tui") / "runs"


def config_sha256(sections: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(sections, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def audit(self) -> Path:
        return self.path / "audit.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def stop_flag(self) -> Path:
        return self.path / "stop"

    @property
    def lock_file(self) -> Path:
        return self.path / "runner.lock"

    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text())

    def config(self) -> Config:
        recorded = json.loads((self.path / "config.json").read_text())
        return config_from_sections(recorded["sections"], self.path / "config.json", recorded["preset"])

    def dataset(self) -> dict[str, Any]:
        return json.loads((self.path / "dataset.json").read_text())

    def request_stop(self) -> None:
        self.stop_flag.write_text(str(time.time()))

    def stop_requested(self) -> bool:
        return self.stop_flag.exists()


def open_run(path: Path) -> RunDir:
    """A run directory that exists and is one of ours (else BadInput, exit 2)."""
    if not (path / "run.json").is_file() or not (path / "config.json").is_file():
        raise BadInput(f"{path}: not a Forge TUI run directory (no run.json / config.json)")
    try:
        json.loads((path / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path / 'run.json'}: unreadable: {exc}") from None
    return RunDir(path)


def find_run(name_or_path: str, config: Config) -> RunDir:
    candidate = Path(name_or_path).expanduser()
    if not candidate.exists():
        candidate = runs_root(config) / name_or_path
    if not candidate.exists():
        raise BadInput(f"{name_or_path}: no such run (looked in {runs_root(config)})")
    return open_run(candidate)


def dataset_manifest(path: Path, config: Config) -> dict[str, Any]:
    """Check the dataset (every problem is fatal for training) and return its manifest."""
    report = check_dataset([path], eval_fraction=config.data.eval_fraction,
                           max_record_bytes=config.data.max_record_mib * 1024 * 1024,
                           strict=config.data.screening == "strict")
    if not report.ok:
        raise DatasetError(report.problems)
    assert report.manifest is not None
    return {"path": str(path.resolve()), "manifest": report.manifest.to_json()}


BUILTIN_REHEARSAL = {"general": Path(__file__).with_name("general_rehearsal.jsonl")}


def rehearsal_file(spec: str) -> Path | None:
    """The rehearsal set a config names: none, a built-in one, or a file."""
    if not spec:
        return None
    return BUILTIN_REHEARSAL.get(spec) or Path(spec).expanduser().resolve()


def _rehearsal_record(config: Config) -> dict[str, Any] | None:
    """Path and hash of the rehearsal set, checked like any training data before the run exists."""
    path = rehearsal_file(config.data.rehearsal)
    if path is None:
        return None
    if not path.is_file():
        raise BadInput(f"[data] rehearsal: {path}: no such file")
    load_samples(path, config.data.max_record_mib * 1024 * 1024)
    return {"path": str(path), "sha256": file_sha256(path)}


def _absolute_replay(source: str) -> str:
    """A run records `replay:FILE` with an absolute path (a detached or resumed runner may start
    elsewhere), after checking the recording can be played (bad input is refused before the run exists)."""
    if not source.startswith("replay:"):
        return source
    from forge_tui.engine.telemetry.replay import load_recording

    path = Path(source[len("replay:"):].strip()).expanduser().resolve()
    load_recording(path)
    return f"replay:{path}"


def create_run(config: Config, dataset: Path, run_dir: Path | None = None) -> RunDir:
    """Validate everything a run needs, then lay out its directory. Refuses to reuse a run."""
    if not dataset.exists():
        raise BadInput(f"{dataset}: no such dataset")
    model = resolve_model(config.model.name, config.models.paths)  # refuse a missing or pickle-only model now
    manifest = dataset_manifest(dataset, config)
    telemetry_source = _absolute_replay(config.telemetry.source)
    rehearsal = _rehearsal_record(config)
    path = run_dir or runs_root(config) / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.preset}"
    if path.exists() and any(path.iterdir()):
        raise BadInput(f"{path}: already exists and is not empty; use `forge-tui resume` for an existing run")
    path.mkdir(parents=True, exist_ok=True)
    sections = config.sections()
    sections["train"]["dataset"] = manifest["path"]
    sections["telemetry"]["source"] = telemetry_source
    if rehearsal:
        sections["data"]["rehearsal"] = rehearsal["path"]
        manifest["rehearsal"] = rehearsal
    digest = config_sha256(sections)
    meta = {"name": path.name, "created": time.time(), "preset": config.preset,
            "config_sha256": digest, "dataset_sha256": manifest["manifest"]["sha256"]}
    (path / "config.json").write_text(json.dumps({"preset": config.preset, "sections": sections}, indent=2))
    (path / "dataset.json").write_text(json.dumps(manifest, indent=2))
    (path / "run.json").write_text(json.dumps(meta, indent=2))
    run = RunDir(path)
    AuditLog(run.audit).append("run_created", **who(), dataset=manifest["path"], dataset_sha256=meta["dataset_sha256"],
                               config_sha256=digest, model=str(model), model_sha256=model_sha256(model), versions=versions())
    return run


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


def run_status(run: RunDir) -> dict[str, Any]:
    """State and headline numbers of a run, from its files and process liveness."""
    events = read_events(run.events)
    last_of = {e["type"]: e for e in events}
    latest = next((e for e in reversed(events) if e["type"] in TERMINAL or e["type"] == "run_started"), None)
    pause = next((e for e in reversed(events) if e["type"] in ("paused", "resumed", "run_started")), None)
    if is_running(run):
        finished = latest is not None and latest["type"] == "finished"  # only a benchmark runs on a finished run
        state = "benchmarking" if finished else "paused" if pause and pause["type"] == "paused" else "running"
    elif latest is None:
        state = "created"
    else:
        state = TERMINAL.get(latest["type"], "interrupted")
    step = last_of.get("step", {})
    checkpoint = latest_checkpoint(run.checkpoints)
    meta = run.meta()
    return {
        "name": run.name, "path": str(run.path), "state": state, "preset": meta.get("preset"),
        "created": meta.get("created"), "pid": runner_pid(run) if state in ("running", "paused") else None,
        "step": step.get("step", 0), "total_steps": step.get("total_steps", last_of.get("run_started", {}).get("total_steps")),
        "loss": step.get("loss"), "eval_loss": last_of.get("eval", {}).get("eval_loss"),
        "last_checkpoint": str(checkpoint) if checkpoint else None,
        "error": last_of.get("error", {}).get("message") if state == "failed" else None,
        "adapter": str(run.adapter) if state == "finished" else None,
        "reason": _state_reason(state, pause, last_of.get("stopped")),
        "bench": _bench_summary(last_of.get("bench_result")),
    }


def _bench_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last benchmark's composites, when there was one."""
    if result is None:
        return None
    return {key: result[key] for key in ("base", "tuned", "delta", "ci95", "result")}


def _state_reason(state: str, pause: dict[str, Any] | None, stopped: dict[str, Any] | None) -> str | None:
    """Why a run is paused, or stopped by the thermal guard (an operator's stop needs no reason)."""
    if state == "paused" and pause:
        return str(pause["reason"])
    if state == "stopped" and stopped and stopped.get("reason", "operator") != "operator":
        return str(stopped["reason"])
    return None


def list_runs(config: Config) -> list[dict[str, Any]]:
    root = runs_root(config)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if (path / "run.json").is_file():
            try:
                found.append(run_status(RunDir(path)))
            except (OSError, ValueError) as exc:
                found.append({"name": path.name, "path": str(path), "state": "unreadable", "error": str(exc)})
    return found


def start_detached(run: RunDir, config_file: Path | None, *command: str, log_name: str = "runner.log") -> int:
    """Start `forge-tui COMMAND` (by default `resume RUN`) in a new session: it outlives the
    terminal and its hang-up. Its output goes to RUN/LOG_NAME."""
    argv = [sys.executable, "-m", "forge_tui"]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    argv += list(command) or ["resume", str(run.path)]
    with open(run.path / log_name, "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, close_fds=True)
    return process.pid


def ensure_resumable(run: RunDir) -> None:
    """Refuse a resume that cannot continue this run as it was."""
    if is_running(run):
        raise BadInput(f"{run.path}: already running (pid {runner_pid(run)})")
    status = run_status(run)
    if status["state"] == "finished":
        raise BadInput(f"{run.path}: already finished; its adapter is in {run.adapter}")
    saved = [e["path"] for e in read_events(run.events) if e["type"] == "checkpoint"]
    if saved and status["last_checkpoint"] is None:
        raise BadInput(f"{run.path}: no complete checkpoint left (missing or damaged: {', '.join(Path(p).name for p in saved[-3:])}); "
                       "refusing to start over on top of this run's history")
    dataset = run.dataset()
    path = Path(dataset["path"])
    if not path.exists():
        raise BadInput(f"{run.path}: its dataset {path} is gone")
    recorded = dataset["manifest"]
    current = dataset_manifest(path, run.config())["manifest"]
    if current["sha256"] != recorded["sha256"]:
        changed = [f"{c['path']}: sha256 {r['sha256'][:12]} -> {c['sha256'][:12]}, samples {r['samples']} -> {c['samples']}"
                   for r, c in zip(recorded["files"], current["files"]) if r["sha256"] != c["sha256"]]
        if len(recorded["files"]) != len(current["files"]):
            changed.append(f"files {len(recorded['files'])} -> {len(current['files'])}")
        raise BadInput(f"{run.path}: the dataset changed since the run started; refusing to resume:\n  " + "\n  ".join(changed))
    rehearsal = dataset.get("rehearsal")
    if rehearsal and (not Path(rehearsal["path"]).is_file() or file_sha256(Path(rehearsal["path"])) != rehearsal["sha256"]):
        raise BadInput(f"{run.path}: its rehearsal set {rehearsal['path']} changed or is gone; refusing to resume")
    sections = json.loads((run.path / "config.json").read_text())["sections"]
    if config_sha256(sections) != run.meta()["config_sha256"]:
        raise BadInput(f"{run.path}/config.json changed since the run started (hash differs); refusing to resume")


def require_finished(run: RunDir) -> Path:
    if not (run.adapter / "adapter_config.json").is_file():
        raise BadInput(f"{run.path}: the run has not finished (no final adapter); resume it first")
    return run.adapter

