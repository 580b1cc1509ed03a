"""What a dataset is made of once read: samples in one chat form, and problems located at FILE:LINE
(FILE:row N in a columnar file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from forge_tui.errors import BadInput

Format = Literal["chat", "sharegpt", "alpaca", "prompt", "text"]
COLUMNAR_SUFFIXES = (".parquet", ".arrow")


def location(file: Path, line: int | None) -> str:
    """Where a record is: FILE:LINE in a text file, FILE:row N in a Parquet or Arrow file."""
    if not line:
        return str(file)
    return f"{file}:row {line}" if file.suffix.lower() in COLUMNAR_SUFFIXES else f"{file}:{line}"


@dataclass(frozen=True)
class Message:
    """One turn. `train` is False for an assistant turn that carries no loss (OpenAI's `weight: 0`,
    a TRL prompt's own assistant turns); `tool_calls` and `extra` (`name`, `tool_call_id`) go to chat
    templates that render tools."""

    role: str
    content: str
    train: bool = True
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    extra: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        turn: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            turn["tool_calls"] = [dict(call) for call in self.tool_calls]
        turn.update(self.extra)
        return turn


@dataclass(frozen=True)
class Sample:
    """One training example in the internal chat form.

    A `text` record becomes a single assistant message with `fmt == "text"`: it is trained on as
    raw text, without the chat template. `tools` are the function specs a tool-calling
    conversation was written against (rendered by the chat template, which must support them).
    """

    messages: tuple[Message, ...]
    fmt: Format
    file: Path
    line: int
    meta: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Mapping[str, Any], ...] = ()

    @property
    def where(self) -> str:
        return location(self.file, self.line)

    @property
    def uses_tools(self) -> bool:
        return bool(self.tools) or any(m.tool_calls or m.role == "tool" for m in self.messages)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [m.as_dict() for m in self.messages]


@dataclass(frozen=True)
class Problem:
    """Something wrong with the input, located as precisely as the format allows."""

    file: Path
    line: int | None
    message: str
    stops: bool = False   # reading the file stopped here: it explains the problems before it, so it is always shown

    @property
    def where(self) -> str:
        return location(self.file, self.line)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class DatasetError(BadInput):
    """A dataset that must be clean has problems; the message lists them (capped)."""

    def __init__(self, problems: list[Problem], cap: int = 50) -> None:
        self.problems = problems
        lines = [str(p) for p in problems[:cap]]
        if len(problems) > cap:
            lines.append(f"... and {len(problems) - cap} more problems")
        super().__init__("\n".join(lines))
