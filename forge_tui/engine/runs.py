"""Run directories: their layout, creation (everything checked first), lookup, stop requests, and
the one rule for a finished run.

RUN_DIR/
  run.json                  name, creation time, preset, config and dataset hashes
  config.json               the resolved config (every section, every value)
  dataset.json              the dataset path, its SHA-256 manifest and the rehearsal set's hash
  events.jsonl              the event log (see events.py)
  audit.jsonl               the hash-chained audit trail (see audit.py)
  checkpoints/              step-NNNNNN/ folders (see checkpoint.py)
  rehearsal-answers.jsonl   the base model's answers to the rehearsal questions (see rehearsal.py)
  adapter/                  the final adapter in PEFT format (safetensors)
  start-adapter.safetensors the weights a fresh run's adapter starts from (a fleet round's global adapter)
  bench/                    result.json and report.md of the last benchmark (see bench.py)
  merged/                   a merged full model, when the console exported one (see export.py)
  runner.lock               held (flock) by the live runner or benchmark; holds its pid
  runner.log, bench.log     the detached runner's and benchmark's stdout/stderr
  stop                      present while a stop is requested

Liveness and states are in status.py; the process owning a run (lock, log, trail) and the checks
before a resume in runner.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_data_path

from forge_tui.config import REPLAY_PREFIX, Config, config_from_sections, replay_file
from forge_tui.engine.audit import AuditLog, versions, who
from forge_tui.engine.data import DatasetError
from forge_tui.engine.datacheck import check_configured
from forge_tui.engine.fsutil import read_json_object
from forge_tui.engine.models import model_sha256, resolve_model
from forge_tui.engine.rehearsal import rehearsal_record
from forge_tui.errors import BadInput


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
    def start_adapter(self) -> Path:
        return self.path / "start-adapter.safetensors"

    @property
    def stop_flag(self) -> Path:
        return self.path / "stop"

    @property
    def lock_file(self) -> Path:
        return self.path / "runner.lock"

    def meta(self) -> dict[str, Any]:
        return read_json_object(self.path / "run.json")

    def config(self) -> Config:
        recorded = read_json_object(self.path / "config.json")
        return config_from_sections(recorded["sections"], self.path / "config.json", recorded["preset"])

    def dataset(self) -> dict[str, Any]:
        return read_json_object(self.path / "dataset.json")

    def request_stop(self) -> None:
        self.stop_flag.write_text(str(time.time()))

    def stop_requested(self) -> bool:
        return self.stop_flag.exists()


def open_run(path: Path) -> RunDir:
    """A run directory that exists and is one of ours (else BadInput, exit 2)."""
    path = path.resolve()  # recorded paths (events, results, the audit trail) read the same from any folder
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


def dataset_manifest(path: Path, config: Config, model: Path | None = None) -> dict[str, Any]:
    """Check the dataset (every problem is fatal for training; with the `model` folder, against its
    chat template too) and return its manifest."""
    report = check_configured([path], config.data, model=model)
    if not report.ok:
        raise DatasetError(report.problems)
    assert report.manifest is not None
    return {"path": str(path.resolve()), "manifest": report.manifest.to_json()}


def _absolute_replay(source: str) -> str:
    """A run records `replay:FILE` with an absolute path (a detached or resumed runner may start
    elsewhere), after checking the recording can be played (bad input is refused before the run exists)."""
    recording = replay_file(source)
    if recording is None:
        return source
    from forge_tui.engine.telemetry.replay import load_recording

    path = recording.resolve()
    load_recording(path)
    return f"{REPLAY_PREFIX}{path}"


def create_run(config: Config, dataset: Path, run_dir: Path | None = None) -> RunDir:
    """Validate everything a run needs, then lay out its directory. Refuses to reuse a run."""
    if not dataset.exists():
        raise BadInput(f"{dataset}: no such dataset")
    model = resolve_model(config.model.name, config.models.paths)  # refuse a missing or pickle-only model now
    manifest = dataset_manifest(dataset, config, model)
    telemetry_source = _absolute_replay(config.telemetry.source)
    rehearsal = rehearsal_record(config)
    path = (run_dir or runs_root(config) / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.preset}").resolve()
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


def has_final_adapter(run: RunDir) -> bool:
    """The one rule for "finished": the final adapter is in place (it is published atomically, before
    the `finished` event, which a kill can tear)."""
    return (run.adapter / "adapter_config.json").is_file()


def require_finished(run: RunDir) -> Path:
    """The run's final adapter (BadInput while the run has none)."""
    if not has_final_adapter(run):
        raise BadInput(f"{run.path}: the run has not finished (no final adapter); resume it first")
    return run.adapter

