"""What every screen shows around its content: the screens as tabs in the header, keys in the footer."""

from __future__ import annotations

from textual.widgets import Footer

SCREENS = ("datasets", "train", "monitor", "compare", "runs", "chat", "fleet")


def nav(current: str) -> str:
    """'1 Datasets  [2 Train]  3 Monitor ...': where the operator is, and the key to every screen."""
    return " ".join(f"[{n} {name.title()}]" if name == current else f"{n} {name.title()}"
                     for n, name in enumerate(SCREENS, start=1))


def footer() -> Footer:
    """Compact and without the palette hint (ctrl+p is in the help), so that 80 columns show the
    screen's own keys; the screens' keys are grouped, their names are in the header."""
    return Footer(compact=True, show_command_palette=False)
