"""Help: every key, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Forge TUI keys

| key | does |
|---|---|
| up / down | choose a dataset |
| p | switch between its check and a preview of its samples |
| r | check it again (after editing the file) |
| ? | this help |
| ctrl+q | quit |

A dataset with problems lists each as `FILE:LINE: what is wrong`;
it cannot be trained on until they are fixed. Files are never modified.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
