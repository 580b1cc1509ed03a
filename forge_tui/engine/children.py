"""Forge's own command line as a child process: the one argv that starts it, detached starts that
outlive the terminal, and the record a detached start answers with (`--json`)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def forge_argv(config_file: Path | None, *args: str) -> list[str]:
    """`python -m forge_tui [--config F] ARGS` for the interpreter running this process."""
    argv = [sys.executable, "-m", "forge_tui"]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    return argv + list(args)


def start_detached(argv: list[str], log: Path) -> int:
    """Start `argv` in a new session (it outlives the terminal and its hang-up), its output appended
    to `log`; returns its pid."""
    with open(log, "ab") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                   start_new_session=True, close_fds=True)
    return process.pid


@dataclass(frozen=True)
class Launched:
    """What `train --detach --json`, `resume --detach --json` and `bench --detach --json` print: the
    run the detached process works on, and its pid."""

    run: str
    pid: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Launched:
        return cls(run=str(record["run"]), pid=int(record["pid"]))
