"""Sizes and numbers as an operator reads them, defined once for the CLI, the engine's messages and
the console."""

from __future__ import annotations

MIB = 1024**2
GIB = 1024**3


def gib(count: int | float | None, digits: int = 1) -> str:
    """A byte count in GiB without the unit ("-" when unknown): `gib(3 * GIB)` -> "3.0"."""
    return "-" if count is None else f"{count / GIB:.{digits}f}"


def human_bytes(count: int | None) -> str:
    """A byte count with the largest unit up to GiB that keeps it readable: "512 B", "1.5 MiB"."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def human_count(count: int | None) -> str:
    """A parameter count in millions or billions: "134.5 M", "6.74 B"."""
    if count is None:
        return "-"
    return f"{count / 1e9:.2f} B" if count >= 1e9 else f"{count / 1e6:.1f} M"


def figure(value: float | None, digits: int = 1, *, sign: bool = False) -> str:
    """A number at fixed precision, "-" when there is none; `sign` shows + on a change."""
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """A count with its noun in the right number: `counted(1, "group")` -> "1 group"."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def duration(seconds: float) -> str:
    """A span as a clock reads it: "4m05s", "1h05m"."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s"


def about(seconds: float) -> str:
    """An estimate in words, as rounded as it is sure: "about 40 s", "about 11 min", "about 2.5 h"."""
    if seconds < 90:
        return f"about {max(10, round(seconds / 10) * 10)} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
