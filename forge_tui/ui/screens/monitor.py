"""Monitor: the attached run's progress and loss beside the device's telemetry, and the event log.

The run's events are tailed from its log file by a thread worker (ui.tailing); telemetry is read
from the app's sampler thread once a second, and the latest reading replaces the last one, so
nothing queues behind a slow screen.
"""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Header, ProgressBar, RichLog, Static
from textual_plotext import PlotextPlot

from forge_tui.config import Config
from forge_tui.engine.events import read_events
from forge_tui.engine.runs import RunDir, has_final_adapter
from forge_tui.engine.telemetry.record import describe, run_record
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.lossplot import Curves, draw_curves
from forge_tui.ui.runview import RunView
from forge_tui.ui.tailing import FollowingScreen, RunEvents
from forge_tui.ui.telemetry_view import TelemetryHistory, telemetry_markup

ENDED = ("finished", "stopped", "failed", "interrupted")


class MonitorScreen(FollowingScreen):
    """Loss, progress and telemetry; with no run attached, telemetry alone."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "stop", "Stop run", id="monitor.stop")]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.run: RunDir | None = None
        self.view: RunView | None = None
        self.history = TelemetryHistory()
        self.record: list[str] | None = None   # a run that has ended: its time, energy and thermal story

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run-panel"):
            yield Static("no run attached: press 5 for Runs, pick one, enter", id="run-headline")
            yield ProgressBar(id="run-progress", show_eta=False)
            yield Static("", id="run-figures")
        with Horizontal(id="monitor-body"):
            yield PlotextPlot(id="loss-chart")
            yield Static("waiting for the first reading ...", id="telemetry")
        yield RichLog(id="event-log", max_lines=200, wrap=True, markup=False)
        yield footer()

    def on_mount(self) -> None:
        self.sub_title = nav("monitor")
        self.set_interval(self.config.telemetry.interval, self.show_telemetry)
        self.show_telemetry()
        self._draw_chart()
        self.query_one("#run-progress").display = self.run is not None  # no idle animation without a run
        if self.run is not None:
            self.tail(self.run)

    # ------------------------------------------------------------------ the run
    def attach(self, run: RunDir) -> None:
        """Follow `run` from the start of its log (so a reopened console shows the whole story);
        before the screen is first shown, it starts following when it is."""
        self.run, self.view, self.record = run, RunView(run.name), None
        if self.is_mounted:
            self.query_one("#event-log", RichLog).clear()
            self.tail(run)

    def on_run_events(self, message: RunEvents) -> None:
        if message.run != self.run or self.view is None:
            return  # a late batch from a run no longer attached
        view = self.view
        added = view.apply(message.events)
        if not message.alive and view.state in ("running", "paused"):
            # the runner is gone without a last word: kill -9, power loss; or only its `finished`
            # line was torn, and the final adapter, which is what finished means, is in place
            view.state = "finished" if has_final_adapter(message.run) else "interrupted"
        self._show_run(view, added)

    def _show_run(self, view: RunView, new_lines: list[str]) -> None:
        self.query_one("#run-headline", Static).update(view.headline())
        progress = self.query_one("#run-progress", ProgressBar)
        progress.display = True
        progress.update(total=view.total, progress=view.step)
        figures = view.figures()
        if view.guard:
            figures += f"\n{view.guard}"
        if view.error:
            figures += f"\nfailed: {view.error}"
        if view.state not in ENDED:
            self.record = None   # resumed: the record is read again when it ends
        if self.record:
            figures += "\n" + "\n".join(self.record)
        self.query_one("#run-figures", Static).update(figures)
        if view.state in ENDED and self.record is None and self.run is not None:
            self.record = []
            self.read_record(self.run)
        log = self.query_one("#event-log", RichLog)
        for line in new_lines:
            log.write(line)
        self._draw_chart()

    @work(thread=True, exclusive=True, group="record", exit_on_error=False, description="reading the run's record")
    def read_record(self, run: RunDir) -> None:
        """The ended run's thermal and energy record, read off the UI thread (it reads the whole log)."""
        lines = describe(run_record(run.path, read_events(run.events)))
        if len(lines) > 1 and len(lines[0]) + len(lines[1]) < 76:   # time and energy on one line: room for the chart
            lines = [f"{lines[0]}  {lines[1]}", *lines[2:]]
        self.app.call_from_thread(self._show_record, run, lines)

    def _show_record(self, run: RunDir, lines: list[str]) -> None:
        if run == self.run and self.view is not None:
            self.record = lines
            self._show_run(self.view, [])

    def _draw_chart(self) -> None:
        view = self.view
        runs = [Curves(view.name, view.losses, view.evals)] if view else []
        draw_curves(self.query_one("#loss-chart", PlotextPlot), "loss", runs, self.app.current_theme)

    def action_stop(self) -> None:
        if self.run is None or self.view is None or self.view.state not in ("running", "paused"):
            self.notify("no running run attached", severity="warning")
            return
        self.run.request_stop()
        self.notify(f"{self.run.name} checkpoints and stops at its next step (resumable)", title="Stop asked")

    # ------------------------------------------------------------------ telemetry
    def show_telemetry(self) -> None:
        snapshot, problem = self.console.telemetry()
        if snapshot is not None:
            self.history.add(snapshot)
        self.query_one("#telemetry", Static).update(telemetry_markup(snapshot, self.config.thermal, problem, self.history))
