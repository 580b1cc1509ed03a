"""Runs: every run with its state; attach to one, stop it, resume it, export it, open its benchmark.

The table is refreshed from the run directories every few seconds by a thread worker (each row
reads a run's event log). Stopping writes the run's stop request, which the runner honours at the
next step after a checkpoint; resuming starts a detached runner, which outlives this console.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, ProgressBar, Static

from forge_tui.config import Config
from forge_tui.engine.gguf_export import Exported
from forge_tui.engine.side_by_side import comparable
from forge_tui.engine.status import RunStatus, list_runs
from forge_tui.ui.base import ForgeScreen
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.jobs import export_gguf, export_merged, resume_run
from forge_tui.ui.screens.choice import ChoiceScreen
from forge_tui.ui.screens.side_by_side import SideBySideScreen
from forge_tui.units import MIB, duration, figure

T = TypeVar("T")

REFRESH_SECONDS = 3.0
GGUF_CHOICES = [("f16", "merged model, f16 (llama.cpp, full quality)"), ("q8_0", "merged model, q8_0 (half the size)"),
                ("q4_0", "merged model, q4_0 (a quarter; some quality lost)"),
                ("adapter", "the LoRA adapter alone (--lora on a base GGUF)")]
# The first columns fit 80 terminal columns; the rest scroll into view (all of them show at 160).
COLUMNS = (("run", 24), ("state", 12), ("step", 7), ("loss", 5), ("eval", 5), ("time ~est", 12), ("Wh", 6),
           ("low °C", 6), ("note", 40))


def taken(status: RunStatus) -> str:
    """The run's time so far beside what the launch estimated: "11m40s ~11m"."""
    record = status.record
    spent = "-" if record is None or record.seconds is None else duration(record.seconds)
    if status.estimate_s is None:
        return spent
    return f"{spent} ~{round(status.estimate_s / 60)}m" if status.estimate_s >= 60 else f"{spent} ~{status.estimate_s:.0f}s"


def row(status: RunStatus) -> tuple[str, ...]:
    """One table row: where it is, how long it took against the estimate, its energy and the
    lowest thermal headroom it met ("-": not measured here)."""
    step = f"{status.step}/{status.total_steps}" if status.total_steps else "-"
    bench = status.bench
    scored = f"bench {bench.base:.1f} -> {bench.tuned:.1f}" if bench else None
    note = status.error or status.reason or scored or status.preset or ""
    record = status.record
    energy = figure(record.energy_wh, 2) if record else "-"
    lowest = figure(record.headroom_min_c) if record else "-"
    return (status.name, status.state, step, figure(status.loss, 3), figure(status.eval_loss, 3), taken(status), energy,
            lowest, note[:40])


class RunsScreen(ForgeScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "attach", "Attach", id="runs.attach"),
        Binding("s", "stop", "Stop", id="runs.stop"),
        Binding("r", "resume", "Resume", id="runs.resume"),
        Binding("b", "bench", "Benchmark", id="runs.bench"),
        Binding("e", "export", "Export", id="runs.export"),
        Binding("g", "gguf", "GGUF", id="runs.gguf"),
        # space, as the issue asked, but a browser page does not claim it (serve): m is the key shown
        Binding("m", "mark", "Mark", id="runs.mark"),
        Binding("space", "mark", "Mark", id="runs.mark_space", show=False),
        Binding("c", "side_by_side", "Side by side", id="runs.side_by_side"),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.statuses: list[RunStatus] = []
        self.marked: list[str] = []   # run paths, in the order marked

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-message")
        yield ProgressBar(id="runs-progress", show_eta=False)
        yield footer()

    def on_mount(self) -> None:
        self.sub_title = nav("runs")
        table = self.query_one(DataTable)
        for label, width in COLUMNS:  # fixed widths: refreshing rows never moves the columns
            table.add_column(label, width=width)
        self.set_interval(REFRESH_SECONDS, self.refresh_runs)
        self.query_one("#runs-progress").display = False

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False, description="reading the runs")
    def refresh_runs(self) -> None:
        """Re-read every run (each one's whole event log), only while this screen is shown: the
        console must not read logs behind the operator's back while a run trains."""
        if not self.is_current:
            return
        statuses = list_runs(self.config)
        self.app.call_from_thread(self._show, statuses)

    def _show(self, statuses: list[RunStatus]) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        self.statuses = statuses
        table.clear()
        self.marked = [path for path in self.marked if any(s.path == path for s in statuses)]
        for status in statuses:
            table.add_row(*row(status), key=status.path, label=self._label(status))
        if statuses:
            table.move_cursor(row=min(cursor, len(statuses) - 1))
        else:
            self.say("no runs yet: pick a dataset (1), then Train (2)")

    def _label(self, status: RunStatus) -> str:
        return f"{self.marked.index(status.path) + 1}" if status.path in self.marked else " "

    def action_mark(self) -> None:
        """Mark the run for `c` (or unmark it); the label shows the order marked."""
        status = self.selected()
        if status is None:
            return
        if status.path in self.marked:
            self.marked.remove(status.path)
        else:
            self.marked.append(status.path)
        self._show(self.statuses)
        self.say(f"{len(self.marked)} marked: " + (", ".join(Path(p).name for p in self.marked) or "none")
                 + ("; c shows them side by side" if len(self.marked) > 1 else "; mark another with m"))

    def action_side_by_side(self) -> None:
        marked = comparable([s for path in self.marked for s in self.statuses if s.path == path])
        if len(marked) < 2:
            self.say("mark two or more runs with m (or space), then c shows them side by side")
            return
        self.app.push_screen(SideBySideScreen(marked))

    def selected(self) -> RunStatus | None:
        table = self.query_one(DataTable)
        if not self.statuses or table.cursor_row >= len(self.statuses):
            return None
        return self.statuses[table.cursor_row]

    def say(self, text: str) -> None:
        self.query_one("#runs-message", Static).update(text)

    def on_data_table_row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_attach()  # enter on a row

    def action_attach(self) -> None:
        status = self.selected()
        if status:
            self.console.attach(status.run)

    def _selected_in(self, states: tuple[str, ...], refusal: str) -> RunStatus | None:
        """The selected run when its state is one of `states`; otherwise say why not."""
        status = self.selected()
        if status is not None and status.state not in states:
            self.say(f"{status.name} is {status.state}: {refusal}")
            return None
        return status

    def action_stop(self) -> None:
        status = self._selected_in(("running", "paused"), "nothing to stop")
        if status is not None:
            status.run.request_stop()
            self.say(f"stop asked: {status.name} checkpoints and stops at its next step (resumable)")

    def action_bench(self) -> None:
        status = self.selected()
        if status:
            self.console.compare(status.run)

    def action_export(self) -> None:
        """A merged full model in RUN/merged, for serving without peft."""
        status = self._selected_in(("finished",), "only a finished run can be exported")
        if status is not None:
            target = status.run.path / "merged"
            self.say(f"exporting {status.name} to {target} ...")
            self.in_child(lambda: export_merged(self.config, status.run.path, target),
                          lambda merged: f"merged model written to {merged}", f"export of {status.name} failed")

    def action_gguf(self) -> None:
        """A GGUF file for llama.cpp in RUN/gguf/: the merged model at a chosen quantisation, or the adapter alone."""
        status = self._selected_in(("finished",), "only a finished run can be exported")
        if status is not None:
            self.app.push_screen(ChoiceScreen(f"Export {status.name} as GGUF", GGUF_CHOICES),
                                 lambda choice: self._export_gguf(status, choice) if choice else None)

    def _export_gguf(self, status: RunStatus, choice: str) -> None:
        folder = status.run.path / "gguf"
        folder.mkdir(exist_ok=True)
        target = folder / f"{status.name}-{choice}.gguf"
        quant = None if choice == "adapter" else choice
        self.say(f"exporting {status.name} to {target} ...")
        progress = self.query_one("#runs-progress", ProgressBar)
        progress.update(total=None, progress=0)
        progress.display = True

        def advanced(done: int, total: int) -> None:
            self.app.call_from_thread(progress.update, total=total, progress=done)

        def exported(result: Exported) -> str:
            progress.display = False
            return f"GGUF {result.kind} written to {result.path} ({result.bytes / MIB:.1f} MiB)"

        self.in_child(lambda: export_gguf(self.config, status.run.path, target, quant, advanced), exported,
                      f"GGUF export of {status.name} failed")

    def action_resume(self) -> None:
        status = self.selected()
        if status is not None:
            self.say(f"resuming {status.name} ...")
            self.in_child(lambda: resume_run(self.config, status.run.path),
                          lambda launched: f"{status.name} resumed in its own process (pid {launched.pid}): enter attaches the Monitor",
                          f"{status.name} not resumed")

    @work(thread=True, group="child", exit_on_error=False, description="a run command")
    def in_child(self, job: Callable[[], T], done: Callable[[T], str], failed: str) -> None:
        """A forge-tui command in a child process (resume refuses a running or finished run, export
        an unfinished one, each with the reason), its outcome shown below the table."""
        self.settle(job, lambda result: self._said(done(result)), lambda reason: self._said(f"{failed}: {reason}"))

    def _said(self, text: str) -> None:
        self.query_one("#runs-progress").display = False
        self.say(text)
        self.refresh_runs()
