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
| 1 | **Datasets**: browse, check and preview datasets |
| 3 | **Monitor**: the attached run's loss and progress beside the device's telemetry |
| 5 | **Runs**: every run and its state |
| ? | this help |
| ctrl+q | quit (a run goes on in its own process) |
| ctrl+p | command palette |

**Datasets**: up / down choose a dataset, `p` switches between its check and a preview of its
samples, `r` checks it again (after editing the file). A dataset with problems lists each as
`FILE:LINE: what is wrong`; it cannot be trained on until they are fixed. Files are never modified.

**Runs**: up / down choose a run, enter or `a` attaches the Monitor to it, `s` asks it to stop
(after a checkpoint: it can be resumed), `r` resumes a stopped or interrupted run in the
background. Reopening the console attaches to the run still going.

**Monitor**: the thermal headroom is the distance from the hottest sensor to its throttle trip
point; it turns yellow below the guard's resume threshold and red below its pause threshold.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
