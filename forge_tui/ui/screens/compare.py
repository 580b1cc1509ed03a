"""Compare: base vs tuned on the run's benchmark, subscores with the confidence interval, then every
item with both answers side by side.

The benchmark runs as `forge-tui bench RUN --detach` (its own session, so it outlives this console)
and writes each item to the run's event log as both models answer it; this screen follows that log
(ui.tailing), so the table fills as results arrive and a reopened console shows a finished benchmark.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Header, ProgressBar, Static

from forge_tui.config import Config
from forge_tui.engine.corrections import Correction
from forge_tui.engine.runs import RunDir
from forge_tui.engine.status import list_runs, newest
from forge_tui.ui.benchview import FILTERS, BenchView, item_composite, verdict
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.jobs import start_bench
from forge_tui.ui.screens.correction import CorrectionScreen
from forge_tui.ui.tailing import FollowingScreen, RunEvents
from forge_tui.units import figure

SUMMARY_COLUMNS = (("score", 10), ("base", 6), ("tuned", 6), ("change", 6))
ITEM_COLUMNS = (("item", 18), ("kind", 9), ("base", 4), ("tuned", 5), ("Δ", 4), ("", 8))
MARKS = {"improved": "▲ better", "regressed": "▼ worse", "same": "= same"}  # no colour needed to read it


def summary_rows(view: BenchView) -> list[tuple[str, str, str, str]]:
    return [(name, figure(base), figure(tuned), figure(None if base is None or tuned is None else tuned - base, sign=True))
            for name, base, tuned in view.summary()]


def item_row(item: dict[str, Any]) -> tuple[str, ...]:
    base, tuned = item_composite(item["base"]), item_composite(item["tuned"])
    return (item["id"][:18], item["kind"], f"{base:.0f}", f"{tuned:.0f}", f"{tuned - base:+.0f}", MARKS[verdict(item)])


def answers_markup(item: dict[str, Any], side: str) -> str:
    scores = item[side]
    found = f"facts {scores['facts'] * 100:.0f}%" if scores.get("facts") is not None else (
        f"correct {'yes' if scores.get('correct') else 'no'}" if scores.get("correct") is not None else "")
    return f"[b]{side}[/b] {item_composite(scores):.0f}  {found}\n{escape(scores['answer'])}"


class CompareScreen(FollowingScreen):
    """The benchmark of one run (the one attached, or one opened from Runs)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "bench", "Benchmark", id="compare.bench"),
        Binding("f", "filter", "Filter", id="compare.filter"),
        Binding("c", "correct", "Correct", id="compare.correct"),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.run: RunDir | None = None
        self.view = BenchView()
        self.which = "all"
        self.shown: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("no run: open one from Runs (5, then b)", id="bench-headline")
        yield ProgressBar(id="bench-progress", show_eta=False)
        with Horizontal(id="bench-top"):
            yield DataTable(id="bench-summary", cursor_type="none", show_cursor=False)
            yield Static("", id="bench-interval")
        yield DataTable(id="bench-items", cursor_type="row", zebra_stripes=True)
        with Vertical(id="bench-detail"):
            yield Static("", id="bench-question")
            with Horizontal():
                with VerticalScroll():
                    yield Static("", id="bench-base")
                with VerticalScroll():
                    yield Static("", id="bench-tuned")
        yield footer()

    def on_mount(self) -> None:
        self.sub_title = nav("compare")
        for table, columns in (("#bench-summary", SUMMARY_COLUMNS), ("#bench-items", ITEM_COLUMNS)):
            widget = self.query_one(table, DataTable)
            for label, width in columns:  # fixed widths: the table does not jump as results arrive
                widget.add_column(label, width=width)
        self.query_one("#bench-progress").display = False
        if self.run is not None:
            self.tail(self.run)

    def on_screen_resume(self) -> None:
        if self.run is None:
            self.pick_default()

    @work(thread=True, exclusive=True, group="pick", exit_on_error=False, description="choosing a run to compare")
    def pick_default(self) -> None:
        """The attached run; else the newest run with a benchmark; else the newest finished run."""
        statuses = newest(list_runs(self.config))
        benched = [s for s in statuses if s.bench] or [s for s in statuses if s.state == "finished"]
        run = self.console.attached_run() or (benched[0].run if benched else None)
        if run is not None:
            self.app.call_from_thread(self.open, run)

    def open(self, run: RunDir) -> None:
        """Show `run`'s benchmark, following its log from the start."""
        if run == self.run:
            return
        self.run, self.view = run, BenchView()
        if self.is_mounted:
            self._redraw()
            self.tail(run)

    def on_run_events(self, message: RunEvents) -> None:
        if message.run != self.run:
            return
        self.view.apply(message.events)
        if self.view.state == "running" and not message.alive:
            self.view.state, self.view.error = "failed", "the benchmark process ended without a result"
        self._redraw()

    # ------------------------------------------------------------------ drawing
    def headline(self) -> str:
        view, name = self.view, self.run.name if self.run else ""
        if view.state == "none":
            return f"{name}: no benchmark yet; press b to run one (the run must be finished)"
        if view.state == "running":
            return f"{name}: benchmark running, {view.done}/{view.total} items answered by both models"
        if view.state == "failed":
            return f"{name}: benchmark failed: {view.error}"
        return f"{name}: benchmark of {len(view.items)} items, {view.seconds:.0f} s  filter: {self.which} (f)"

    def _redraw(self) -> None:
        view = self.view
        self.query_one("#bench-headline", Static).update(escape(self.headline()))
        progress = self.query_one("#bench-progress", ProgressBar)
        progress.display = view.state == "running"
        progress.update(total=view.total, progress=view.done)
        summary = self.query_one("#bench-summary", DataTable)
        summary.clear()
        summary.add_rows(summary_rows(view))
        self.query_one("#bench-interval", Static).update(view.interval())
        self._fill_items(view.shown_items(self.which))

    def _fill_items(self, wanted: list[dict[str, Any]]) -> None:
        """Append the items not shown yet (a running benchmark adds a batch at a time); start over for
        a new benchmark or another filter."""
        items = self.query_one("#bench-items", DataTable)
        if wanted[:len(self.shown)] != self.shown:
            items.clear()
            self.shown = []
        first = not self.shown
        for item in wanted[len(self.shown):]:
            items.add_row(*item_row(item))
            self.shown.append(item)
        if first:
            self._show_item(0)

    @on(DataTable.RowHighlighted, "#bench-items")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_item(event.cursor_row)

    def _show_item(self, index: int) -> None:
        if index >= len(self.shown):
            for target in ("#bench-question", "#bench-base", "#bench-tuned"):
                self.query_one(target, Static).update("")
            return
        item = self.shown[index]
        facts = f"  [dim]facts: {escape(', '.join(item['facts']))}[/]" if item["facts"] else ""
        self.query_one("#bench-question", Static).update(
            f"[b]Q[/b] {escape(item['question'])}\n[b]reference[/b] {escape(item['reference'])}{facts}")
        self.query_one("#bench-base", Static).update(answers_markup(item, "base"))
        self.query_one("#bench-tuned", Static).update(answers_markup(item, "tuned"))

    # ------------------------------------------------------------------ actions
    def action_filter(self) -> None:
        self.which = FILTERS[(FILTERS.index(self.which) + 1) % len(FILTERS)]
        self._redraw()

    def action_correct(self) -> None:
        """The highlighted item's tuned answer, to rewrite into the corrections dataset."""
        row = self.query_one("#bench-items", DataTable).cursor_row
        if not self.shown or row >= len(self.shown):
            self.notify("no item to correct: run the benchmark first (b)", severity="warning")
            return
        item = self.shown[row]
        question = Correction(({"role": "user", "content": item["question"]},), item["tuned"]["answer"], "",
                              f"benchmark item {item['id']}")
        self.app.push_screen(CorrectionScreen(self.config, self.run, question))

    def action_bench(self) -> None:
        if self.run is None:
            self.notify("no run: open one from Runs (5), then b", severity="warning")
        elif self.view.state == "running":
            self.notify("a benchmark is already running", severity="warning")
        else:
            self.query_one("#bench-headline", Static).update(f"{escape(self.run.name)}: starting the benchmark ...")
            self.start_bench(self.run)

    @work(thread=True, group="bench", exit_on_error=False, description="starting the benchmark")
    def start_bench(self, run: RunDir) -> None:
        """`bench RUN --detach`: it refuses an unfinished or busy run, with the reason; once started,
        the run's event log tells the rest."""
        self.settle(lambda: start_bench(self.config, run.path), lambda _: None, self._refused)

    def _refused(self, reason: str) -> None:
        self.query_one("#bench-headline", Static).update(escape(f"benchmark refused: {reason}"))
