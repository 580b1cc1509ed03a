"""Themes from themes/*.toml, loaded into Textual themes.

A theme file holds the fields of `textual.theme.Theme` (name, dark, colours as CSS colours, and a
`[variables]` table overriding Textual's derived ones, e.g. `text-muted`); a wrong key, type or
colour is refused with its file and line, like every other input.

`contrast_failures` checks the pairs the screens draw (text on each background, borders and bold
headings) against WCAG 2's contrast ratios: 4.5:1 for text, 3:1 for large or bold text and for
borders. The shipped themes pass it (tests/ui/test_themes.py).
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


def _colour(path: Path, text: str, key: str, value: Any) -> None:
    try:
        Color.parse(value)
    except (ColorParseError, TypeError):
        raise _problem(path, text, key, f"not a colour: {value!r}") from None


def _checked(path: Path, text: str, data: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(Theme)}
    for key, value in data.items():
        if key not in known:
            raise _problem(path, text, key, f"unknown key (known: {', '.join(sorted(known))})")
        if key in COLOURS:
            _colour(path, text, key, value)
        elif key == "variables":
            if not isinstance(value, dict):
                raise _problem(path, text, key, "expected a table of Textual variables")
            for name, colour in value.items():
                _colour(path, text, name, colour)
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


# ------------------------------------------------------------------------------------------ contrast
TEXT = ("foreground", "text-muted", "success", "warning", "error", "accent")  # drawn as text: 4.5:1
LARGE = ("primary",)                                 # borders and bold headings: 3:1
GROUNDS = ("background", "surface", "panel")
FOOTER = (("footer-key-foreground", "footer-background"), ("footer-foreground", "footer-background"))
TEXT_RATIO, LARGE_RATIO = 4.5, 3.0


def relative_luminance(colour: Color) -> float:
    """WCAG 2's relative luminance of an sRGB colour."""
    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4
    return 0.2126 * linear(colour.r) + 0.7152 * linear(colour.g) + 0.0722 * linear(colour.b)


def contrast_ratio(first: Color, second: Color) -> float:
    light, dark = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _resolve(variables: dict[str, str], name: str, ground: Color) -> Color:
    """A theme variable as drawn on `ground`: Textual's `auto N%` (its contrasting text) and
    colours with alpha are composed over the background, as the terminal shows them."""
    value = variables[name]
    if value.startswith("auto"):
        alpha = float(value.split()[1].rstrip("%")) / 100 if " " in value else 1.0
        return ground + ground.get_contrast_text(alpha)
    return ground + Color.parse(value)


def contrast_failures(theme: Theme) -> list[str]:
    """Each pair the screens draw that is below its WCAG ratio, as `fg on bg: ratio < needed`."""
    variables = theme.to_color_system().generate()
    pairs = [(fg, bg, TEXT_RATIO) for fg in TEXT for bg in GROUNDS] + [(fg, bg, LARGE_RATIO) for fg in LARGE for bg in GROUNDS]
    pairs += [(fg, bg, TEXT_RATIO) for fg, bg in FOOTER]
    failures = []
    for fg, bg, needed in pairs:
        ground = Color.parse("black") + Color.parse(variables[bg])
        ratio = contrast_ratio(_resolve(variables, fg, ground), ground)
        if ratio < needed:
            failures.append(f"{theme.name}: {fg} on {bg}: {ratio:.2f} < {needed}")
    return failures
