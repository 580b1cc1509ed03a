"""Themes from themes/*.toml, loaded into Textual themes.

A theme file holds the fields of `textual.theme.Theme` (name, dark, and colours as CSS colours); a
wrong key, type or colour is refused with its file and line, like every other input.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from forge_tui.config import TOMLDecodeError, toml_loads
from forge_tui.errors import BadInput
from forge_tui.paths import project_root

COLOURS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost",
           "success", "warning", "error")


def themes_dir() -> Path:
    return project_root() / "themes"


def _line(text: str, key: str) -> int | None:
    found = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else None


def _problem(path: Path, text: str, key: str, message: str) -> BadInput:
    line = _line(text, key)
    return BadInput(f"{path}:{line}: {key}: {message}" if line else f"{path}: {key}: {message}")


def _checked(path: Path, text: str, data: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(Theme)} - {"variables"}
    for key, value in data.items():
        if key not in known:
            raise _problem(path, text, key, f"unknown key (known: {', '.join(sorted(known))})")
        if key in COLOURS:
            try:
                Color.parse(value)
            except (ColorParseError, TypeError):
                raise _problem(path, text, key, f"not a colour: {value!r}") from None
        elif key == "dark" and not isinstance(value, bool):
            raise _problem(path, text, key, "expected true or false")
    for required in ("name", "primary"):
        if required not in data:
            raise BadInput(f"{path}: missing {required}")
    return data


def load_theme(path: Path) -> Theme:
    text = path.read_text(encoding="utf-8")
    try:
        data = toml_loads(text)
    except TOMLDecodeError as exc:
        raise BadInput(f"{path}: {exc}") from None
    return Theme(**_checked(path, text, data))


def load_themes(folder: Path | None = None) -> list[Theme]:
    return [load_theme(path) for path in sorted((folder or themes_dir()).glob("*.toml"))]
