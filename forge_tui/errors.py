"""Errors that reach the operator as a message and an exit code, never as a traceback; and the record
a command asked for `--json` prints instead of its answer when it fails."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class ForgeError(Exception):
    """A failure the operator can act on; `exit_code` is what the CLI returns."""

    exit_code = EXIT_FAILURE


class BadInput(ForgeError):
    """Input (a file, a flag, a config) that cannot be used; nothing was modified."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class ErrorRecord:
    """`{"error": message, "exit_code": N}`: what `--json` prints on stdout when the command fails."""

    error: str
    exit_code: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def is_error(record: object) -> bool:
        return isinstance(record, dict) and set(record) == {"error", "exit_code"}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ErrorRecord:
        return cls(error=str(record["error"]), exit_code=int(record["exit_code"]))
