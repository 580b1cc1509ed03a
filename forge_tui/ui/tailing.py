"""Following a run's event log from a screen: a thread worker polls the file and posts what is new.

A closed console reattaches by reading the same file from the start; nothing new, nothing posted, so a
finished run costs no redraws.
"""

from __future__ import annotations

import time

from textual import work
from textual.message import Message
from textual.worker import get_current_worker

from forge_tui.engine.events import EventTail, Record
from forge_tui.engine.runs import RunDir
from forge_tui.engine.status import is_running
from forge_tui.ui.base import ForgeScreen

TAIL_SECONDS = 0.5
LIVENESS_SECONDS = 2.0


class RunEvents(Message):
    """A batch of new events from the followed run's log, and whether a process still holds the run."""

    def __init__(self, run: RunDir, events: list[Record], alive: bool) -> None:
        super().__init__()
        self.run, self.events, self.alive = run, events, alive


class FollowingScreen(ForgeScreen):
    """A screen that follows one run's events (each screen handles `on_run_events` its own way)."""

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False, description="following the run's event log")
    def tail(self, run: RunDir) -> None:
        worker, tail = get_current_worker(), EventTail(run.events)
        checked, alive, told = 0.0, True, None
        while not worker.is_cancelled:
            events = tail.poll()
            if events or time.monotonic() - checked > LIVENESS_SECONDS:  # never news with a stale liveness
                checked, alive = time.monotonic(), is_running(run)
            if events or alive != told:
                self.post_message(RunEvents(run, events, alive))
                told = alive
            time.sleep(TAIL_SECONDS)
