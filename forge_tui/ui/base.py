"""What every screen may ask of the console (`Console`), and the base screen that asks it: typed
access to the app, failures of its workers reported once, and child jobs that always settle.

A screen's thread worker that runs a child process goes through `ForgeScreen.settle`, so the screen
hears the outcome whatever it is (an answer, a `ChildFailed` with its reason, or an exception nobody
expected) and never stays "checking ..." or "launching ...". Anything unexpected also reaches the
app's one handler for worker errors: a notification naming what failed, and the traceback in the
console log.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from textual.screen import Screen
from textual.worker import Worker, WorkerState

from forge_tui.config import Config
from forge_tui.engine.runs import RunDir
from forge_tui.engine.telemetry.snapshot import Snapshot
from forge_tui.ui.jobs import ChildFailed

T = TypeVar("T")


@runtime_checkable
class Console(Protocol):
    """The app as the screens see it (`ForgeApp` is one: tests/ui/test_child_failures.py checks)."""

    config: Config
    dataset: Path | None          # picked on Datasets; what Train trains on
    mappings: dict[Path, dict[str, str]]   # column mappings chosen on Datasets, per dataset

    def attached_run(self) -> RunDir | None:
        """The run the Monitor follows, if any."""

    def attach(self, run: RunDir) -> None:
        """Follow `run` on the Monitor and show it."""

    def compare(self, run: RunDir) -> None:
        """Show `run`'s benchmark on Compare."""

    def telemetry(self) -> tuple[Snapshot | None, str | None]:
        """The latest fresh reading (None when stale or absent) and why there is none, if known."""

    def worker_failed(self, worker: Worker[Any]) -> None:
        """Tell the operator that `worker` failed, and log its traceback."""


class ForgeScreen(Screen[None]):
    @property
    def console(self) -> Console:
        return cast("Console", self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.console.worker_failed(event.worker)

    def settle(self, job: Callable[[], T], done: Callable[[T], None], failed: Callable[[str], None]) -> None:
        """Run `job` (a child process) in the calling worker thread and hand its outcome to the UI
        thread: `done(result)`, or `failed(reason)`. An unexpected exception, in the job or in showing
        its answer, is `failed` too, then re-raised for the worker-error handler."""
        try:
            result = job()
        except ChildFailed as exc:
            self.app.call_from_thread(failed, str(exc))
            return
        except Exception as exc:
            self.app.call_from_thread(failed, f"{type(exc).__name__}: {exc}")
            raise
        try:
            self.app.call_from_thread(done, result)
        except Exception as exc:  # an answer the screen could not show (a shape it did not expect)
            self.app.call_from_thread(failed, f"{type(exc).__name__}: {exc}")
            raise
