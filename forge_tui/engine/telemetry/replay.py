"""Recordings: snapshots written one JSON object per line, and played back at any speed.

A recording starts with a header line (`{"recording": "forge-telemetry", "version": 1, ...}`, saying
what was recorded and whether it is synthetic), then one snapshot per line as `Snapshot.to_json`.
Playback follows the recorded clock, scaled by `speed`, and loops, so a demo never runs dry.
"""

from __future__ import annotations

import bisect
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from forge_tui.engine.telemetry.snapshot import Snapshot
from forge_tui.errors import BadInput

FORMAT = "forge-telemetry"
VERSION = 1


def header(source: str, *, synthetic: bool = False, description: str = "") -> dict[str, Any]:
    return {"recording": FORMAT, "version": VERSION, "source": source, "synthetic": synthetic, "description": description}


def write_recording(handle: TextIO, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def _decode_line(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}:{number}: not a JSON line ({exc.__class__.__name__})") from None
    if not isinstance(record, dict):
        raise BadInput(f"{path}:{number}: expected a JSON object")
    return dict(record)


def raw_ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return True
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def load_recording(path: Path) -> tuple[dict[str, Any], list[Snapshot]]:
    """The header and the snapshots of a recording; BadInput naming FILE:LINE on anything else."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read recording: {exc.strerror or exc}") from None
    meta: dict[str, Any] = {}
    snapshots: list[Snapshot] = []
    torn = len(lines) if lines and not raw_ends_with_newline(path) else 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = _decode_line(path, number, raw)
        except BadInput:
            if number == torn:  # a recording cut off mid-line (power loss): keep what came before
                break
            raise
        if record.get("recording") == FORMAT:
            meta = record
            continue
        try:
            snapshot = Snapshot.from_json(record)
        except ValueError as exc:
            raise BadInput(f"{path}:{number}: not a telemetry snapshot: {exc}") from None
        if snapshots and snapshot.time <= snapshots[-1].time:
            raise BadInput(f"{path}:{number}: time {snapshot.time} does not follow the previous snapshot's {snapshots[-1].time}")
        snapshots.append(snapshot)
    if not meta:
        raise BadInput(f"{path}:1: not a forge-telemetry recording (no header line)")
    if not snapshots:
        raise BadInput(f"{path}: the recording holds no snapshots")
    return meta, snapshots


class ReplaySource:
    """Plays a recording on the recorded clock x `speed`, looping; each snapshot is stamped with now."""

    name = "replay"

    def __init__(self, path: Path, speed: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise BadInput(f"replay speed must be above 0, got {speed}")
        self.path, self.speed, self.clock = path, speed, clock
        self.meta, self.snapshots = load_recording(path)
        first = self.snapshots[0].time
        self.offsets = [snapshot.time - first for snapshot in self.snapshots]
        gaps = [b - a for a, b in itertools.pairwise(self.offsets)]
        self.period = self.offsets[-1] + (sorted(gaps)[len(gaps) // 2] if gaps else 1.0)
        kind = "synthetic recording" if self.meta.get("synthetic") else f"recording from {self.meta.get('source', '?')}"
        self.note = f"replay of {path.name} ({kind}) at {speed:g}x"
        self._started: float | None = None

    def position(self) -> int:
        """Index of the snapshot due now; the clock starts at the first call."""
        now = self.clock()
        if self._started is None:
            self._started = now
        elapsed = ((now - self._started) * self.speed) % self.period
        return max(0, bisect.bisect_right(self.offsets, elapsed) - 1)

    def sample(self) -> Snapshot:
        snapshot = self.snapshots[self.position()]
        return replace(snapshot, time=time.time(), source=self.name, notes=(self.note, *snapshot.notes))

    def close(self) -> None:
        return None
