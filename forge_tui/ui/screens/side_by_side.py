"""Runs side by side: two or more runs marked on Runs (`space`), opened with `c`.

Their loss curves overlaid (eval loss as points), what each achieved (benchmark, eval loss, time
against the estimate, energy, lowest headroom) and the settings that differ between them. The
files are read by a thread worker: a long log never holds the screen.
"""

from __future__ import annotations

from string import ascii_uppercase
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from forge_tui.engine.side_by_side import RunCurves, curves, outcomes, settings_diff
from forge_tui.engine.status import RunStatus
from forge_tui.ui.lossplot import Curves, draw_curves


def letter(index: int) -> str:
    return ascii_uppercase[index % len(ascii_uppercase)]


class SideBySideScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Close", id="sbs.close")]

    def __init__(self, runs: list[RunStatus]) -> None:
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        with Vertical(id="sbs"):
            names = "  ".join(f"{letter(i)} {run.name}" for i, run in enumerate(self.runs))
            yield Static(f"[b]Runs side by side[/b]  {names}  [dim](escape closes)[/]", id="sbs-title")
            yield PlotextPlot(id="sbs-chart")
            yield DataTable(id="sbs-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("", width=22)
        for index, _ in enumerate(self.runs):
            table.add_column(letter(index), width=24)
        self.read_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, description="reading the runs to compare")
    def read_runs(self) -> None:
        found = [curves(run) for run in self.runs]
        differ = settings_diff([run.run.path for run in self.runs])
        self.app.call_from_thread(self._show, found, differ)

    def _show(self, found: list[RunCurves], differ: list[tuple[str, list[str]]]) -> None:
        runs = [Curves(letter(i), c.losses, c.evals) for i, c in enumerate(found)]
        draw_curves(self.query_one(PlotextPlot), "loss (eval: points)", runs, self.app.current_theme)
        table = self.query_one(DataTable)
        results = [outcomes(run) for run in self.runs]
        for name in results[0]:
            table.add_row(name, *(Text(result[name]) for result in results))
        table.add_row(Text("settings that differ", style="bold"), *("" for _ in self.runs))
        for key, values in differ or [("none: all the same", ["" for _ in self.runs])]:
            table.add_row(Text(key), *map(Text, values))   # values are data (paths, sources): never markup
