"""Operator corrections: a question, the tuned model's wrong answer, and the answer the operator
wrote instead, appended to a chat-format dataset that a later run trains on with the original data.

The file is `corrections.jsonl` in the first configured data folder (`[data] dirs`), else in the
user data folder's `forge-tui/datasets/` (where the Datasets screen also looks). Each record is
appended whole under an exclusive lock and fsynced; the run's audit trail records it.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from platformdirs import user_data_path

from forge_tui.engine.audit import AuditLog, who
from forge_tui.engine.fsutil import end_torn_line, fsync_path
from forge_tui.errors import BadInput

if TYPE_CHECKING:
    from forge_tui.config import Config
    from forge_tui.engine.runs import RunDir

FILE_NAME = "corrections.jsonl"


def corrections_folder(config: Config) -> Path:
    """`$FORGE_TUI_DATA_DIR`, else the first configured data folder, else the user data folder's datasets/."""
    override = os.environ.get("FORGE_TUI_DATA_DIR")
    if override:
        return Path(override)
    if config.data.dirs:
        return Path(config.data.dirs[0]).expanduser()
    return user_data_path("forge-tui") / "datasets"


@dataclass(frozen=True)
class Correction:
    """The conversation up to the question, the answer the model gave, the one the operator wrote,
    and where the question came from (the chat, or a benchmark item's id)."""

    conversation: Sequence[dict[str, str]]
    rejected: str
    corrected: str
    origin: str

    def record(self, run: RunDir | None) -> dict[str, object]:
        provenance = {"run": run.name if run else None, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"), "user": who()["user"], "origin": self.origin, "rejected": self.rejected}
        return {"messages": [*self.conversation, {"role": "assistant", "content": self.corrected}],
                "category": "correction", "provenance": provenance}


def save_correction(config: Config, run: RunDir | None, correction: Correction) -> tuple[Path, int]:
    """Append the correction; returns the file and the line it is on."""
    if not correction.corrected.strip():
        raise BadInput("the corrected answer is empty: nothing was saved")
    if correction.corrected.strip() == correction.rejected.strip():
        raise BadInput("the answer is unchanged: nothing was saved")
    if not correction.conversation or correction.conversation[-1].get("role") != "user":
        raise BadInput("a correction needs the question it answers")
    folder = corrections_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    line = json.dumps(correction.record(run), ensure_ascii=False)
    number = _append(path, line)
    if run is not None:
        AuditLog(run.audit).append("correction", **who(), file=str(path), line=number, origin=correction.origin,
                                   sha256=hashlib.sha256(line.encode()).hexdigest())
    return path, number


def _append(path: Path, line: str) -> int:
    """One whole line at the end of the file (a torn last line from a crash is ended first), fsynced."""
    new = not path.exists()
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        end_torn_line(path)
        with open(path, encoding="utf-8") as existing:
            number = sum(1 for _ in existing) + 1
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    if new:
        fsync_path(path.parent)
    return number
