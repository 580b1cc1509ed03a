"""What a dataset is made of once read: samples in one chat form, and problems located at FILE:LINE."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from forge_tui.errors import BadInput

Format = Literal["chat", "alpaca", "prompt", "text"]
FORMAT_KEYS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "alpaca": ("instruction", "input", "output"),
    "prompt": ("prompt", "completion"),
    "text": ("text",),
}
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Sample:
    """One training example in the internal chat form.

    A `text` record becomes a single assistant message with `fmt == "text"`: it is trained on as
    raw text, without the chat template.
    """

    messages: tuple[Message, ...]
    fmt: Format
    file: Path
    line: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


@dataclass(frozen=True)
class Problem:
    """Something wrong with the input, located as precisely as the format allows."""

    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class DatasetError(BadInput):
    """A dataset that must be clean has problems; the message lists them (capped)."""

    def __init__(self, problems: list[Problem], cap: int = 50) -> None:
        self.problems = problems
        lines = [str(p) for p in problems[:cap]]
        if len(problems) > cap:
            lines.append(f"... and {len(problems) - cap} more problems")
        super().__init__("\n".join(lines))
