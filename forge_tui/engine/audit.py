"""The run's audit trail: RUN/audit.jsonl, append-only, each entry chained to the one before.

Every entry carries `prev` (the previous entry's hash; zeros for the first) and `hash` (SHA-256 of
the entry's canonical JSON without `hash`). Editing an entry breaks its own hash; editing it and
recomputing its hash breaks the next entry's `prev`; removing or inserting one breaks `seq` and the
chain. `verify` names the first line where any of that happens. The trail says who did what where:
user and host, the dataset manifest, base model, config and adapter hashes, software versions, and
every outgoing connection the egress guard refused.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import platform
import socket
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from forge_tui import __version__
from forge_tui.engine.fsutil import file_sha256

GENESIS = "0" * 64
PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "safetensors", "textual")


def _digest(entry: dict[str, Any]) -> str:
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def who() -> dict[str, Any]:
    """The operator and the machine (local calls only: no name lookup leaves the device)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {"uid": os.getuid(), "user": user, "host": socket.gethostname(), "pid": os.getpid()}


def versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing is imported)."""
    found: dict[str, str | None] = {"forge-tui": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


class AuditLog:
    """Appends chained entries; an exclusive lock on the file makes concurrent writers take turns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            last = _last_entry(text)
            if text and not text.endswith("\n"):
                handle.write("\n")  # a writer killed mid-line: the torn entry stays (verify names it), alone on its line
            entry = {"seq": last["seq"] + 1 if last else 1, "time": time.time(), "kind": kind, **fields,
                     "prev": last["hash"] if last else GENESIS}
            entry["hash"] = _digest(entry)
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return entry


def _last_entry(text: str) -> dict[str, Any] | None:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        last = json.loads(lines[-1])
    except ValueError:
        last = None
    if not isinstance(last, dict):  # a damaged last line: the chain goes on from it, and verify flags it
        return {"seq": len(lines), "hash": hashlib.sha256(lines[-1].encode()).hexdigest()}
    return last


def verify(path: Path) -> tuple[int, list[str]]:
    """(entries checked, problems): every line whose entry was edited, removed, inserted or torn."""
    problems: list[str] = []
    previous, expected_seq, count = GENESIS, 1, 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        count += 1
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
            assert isinstance(entry, dict)
        except (ValueError, AssertionError):
            problems.append(f"{where}: not a JSON entry (edited or torn)")
            previous, expected_seq = hashlib.sha256(line.encode()).hexdigest(), expected_seq + 1
            continue
        if entry.get("hash") != _digest(entry):
            problems.append(f"{where}: entry {entry.get('seq')} was changed after it was written (its hash does not match)")
        elif entry.get("prev") != previous:
            problems.append(f"{where}: entry {entry.get('seq')} does not follow the entry before it "
                            "(that one was changed, or entries were removed or inserted)")
        if entry.get("seq") != expected_seq:
            problems.append(f"{where}: entry number {entry.get('seq')} where {expected_seq} was expected "
                            "(entries were removed, inserted or reordered)")
        seq = entry.get("seq")
        previous, expected_seq = str(entry.get("hash")), (seq if isinstance(seq, int) else expected_seq) + 1
    return count, problems


def adapter_sha256(folder: Path) -> str | None:
    weights = folder / "adapter_model.safetensors"
    return file_sha256(weights) if weights.is_file() else None


def record_event(audit: AuditLog, event: dict[str, Any]) -> None:
    """The runner's and the benchmark's milestones, as the trail keeps them."""
    kind = event["type"]
    if kind == "checkpoint":
        audit.append("checkpoint", step=event["step"], adapter_sha256=adapter_sha256(Path(event["path"])))
    elif kind == "finished":
        audit.append("finished", step=event["step"], adapter_sha256=adapter_sha256(Path(event["adapter"])))
    elif kind in ("stopped", "error"):
        audit.append(kind, step=event.get("step"), reason=event.get("reason") or event.get("message"))
    elif kind == "bench_failed":
        audit.append("benchmark_failed", reason=event["message"])
    elif kind == "bench_result":
        audit.append("benchmark", result_sha256=file_sha256(Path(event["result"])), base=event["base"], tuned=event["tuned"])
