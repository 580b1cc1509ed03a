"""Fleet: a fleet run's nodes (name, state, round, samples, loss, thermal headroom, bytes sent), the
rounds' progress and the global eval loss per round; `l` starts a local fleet for a demo.

The screen reads the fleet's files (fleet.status) in a thread worker once a second while it is
shown; the fleet itself runs in its own processes, so closing the console never stops it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.widgets import DataTable, Header, ProgressBar, Static
from textual_plotext import PlotextPlot

from forge_tui.config import Config
from forge_tui.engine.children import Launched
from forge_tui.engine.eventtext import short_node
from forge_tui.engine.runs import RunDir
from forge_tui.fleet.status import FleetStatus, NodeStatus, fleet_runs, fleet_status, supervisor
from forge_tui.ui.base import ForgeScreen
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.jobs import start_local_fleet
from forge_tui.ui.screens.choice import ChoiceScreen
from forge_tui.units import figure, human_bytes

REFRESH_SECONDS = 1.0
COLUMNS = (("node", 10), ("state", 14), ("round", 5), ("samples", 7), ("loss", 6), ("head°C", 6), ("sent", 9))


def node_row(node: NodeStatus) -> tuple[str, ...]:
    """One node, short enough for 80 columns."""
    headroom = "-" if node.headroom_c is None else f"{node.headroom_c:.0f}"
    return (node.name or short_node(node.node), node.state, str(node.round), str(node.samples), figure(node.loss, 3), headroom,
            human_bytes(node.bytes_sent))


def headline(status: FleetStatus) -> str:
    """'RUN  RUNNING  round 2/3  3 nodes  in 114 MB  out 228 MB'."""
    live = sum(node.state not in ("gone", "failed") for node in status.nodes)
    parts = [status.name, status.state.upper(), f"round {status.round}/{status.rounds or '?'}", f"{live} nodes",
             f"in {human_bytes(status.bytes_in)}", f"out {human_bytes(status.bytes_out)}"]
    return "  ".join(parts + (["DP"] if status.private else []))


def demo_split(dataset: Path) -> str:
    """by-category when the dataset's rows carry a category (the sample data does), else iid."""
    try:
        with open(dataset, encoding="utf-8") as handle:
            first = json.loads(handle.readline())
    except (OSError, ValueError):
        return "iid"
    return "by-category" if isinstance(first, dict) and "category" in first else "iid"


class FleetScreen(ForgeScreen):
    """One fleet run at a time: the newest, one started here, or one picked with `m`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "local", "Local fleet", id="fleet.local"),
        Binding("m", "pick", "Pick run", id="fleet.pick"),
        Binding("a", "attach", "Attach", id="fleet.attach"),
        Binding("s", "stop", "Stop", id="fleet.stop"),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.run: RunDir | None = None
        self.status: FleetStatus | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("no fleet run yet: l starts a local fleet of 3 nodes on the picked dataset", id="fleet-headline")
        yield ProgressBar(id="fleet-progress", show_eta=False)
        yield DataTable(id="fleet-nodes", cursor_type="row", zebra_stripes=True)
        yield PlotextPlot(id="fleet-chart")
        yield Static("", id="fleet-message")
        yield footer()

    def on_mount(self) -> None:
        self.sub_title = nav("fleet")
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        self.query_one("#fleet-progress").display = False
        self._draw_chart()
        self.set_interval(REFRESH_SECONDS, self.refresh_fleet)

    def on_screen_resume(self) -> None:
        self.refresh_fleet()

    @work(thread=True, exclusive=True, group="fleet", exit_on_error=False, description="reading the fleet")
    def refresh_fleet(self) -> None:
        """The shown fleet run's state (the newest fleet run when none was picked), only while shown."""
        if not self.is_current:
            return
        if self.run is None:
            found = fleet_runs(self.config)
            self.run = found[0] if found else None
        if self.run is not None and (self.run.path / "run.json").is_file():
            status = fleet_status(self.run)
            self.app.call_from_thread(self.show, status)

    def show(self, status: FleetStatus) -> None:
        self.status = status
        self.query_one("#fleet-headline", Static).update(headline(status))
        progress = self.query_one("#fleet-progress", ProgressBar)
        progress.display = True
        progress.update(total=status.rounds or None, progress=status.round)
        table = self.query_one(DataTable)
        table.clear()
        for node in status.nodes:
            table.add_row(*node_row(node), key=str(node.node))
        self._draw_chart()

    def _draw_chart(self) -> None:
        chart = self.query_one("#fleet-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.title("global eval loss per round")
        points = self.status.eval_loss if self.status else []
        if points:
            colour = Color.parse(self.app.current_theme.primary).rgb  # follows the theme (the night theme stays red)
            plt.plot([r for r, _ in points], [v for _, v in points], marker="dot", color=colour)
            plt.xticks([r for r, _ in points])
        chart.refresh()

    def say(self, text: str) -> None:
        self.query_one("#fleet-message", Static).update(text)

    # ------------------------------------------------------------------ keys
    def action_local(self) -> None:
        dataset = self.console.dataset
        if dataset is None or dataset.suffix != ".jsonl":
            self.say("a local fleet splits a JSON-lines dataset: pick one on Datasets (1)")
            return
        self.say(f"starting a local fleet of 3 nodes on {dataset.name} ...")
        self._start(dataset)

    @work(thread=True, group="child", exit_on_error=False, description="starting a local fleet")
    def _start(self, dataset: Path) -> None:
        def started(launched: Launched) -> None:
            self.run = RunDir(Path(launched.run))
            self.say(f"local fleet started (pid {launched.pid}): 3 SuperNodes and a SuperLink on loopback")
            self.refresh_fleet()

        self.settle(lambda: start_local_fleet(self.config, dataset, demo_split(dataset)), started,
                    lambda reason: self.say(f"the local fleet did not start: {reason}"))

    def action_pick(self) -> None:
        found = fleet_runs(self.config)
        if not found:
            self.say("no fleet run in the runs folder yet")
            return

        def chosen(key: str | None) -> None:
            if key is not None:
                self.run, self.status = RunDir(Path(key)), None
                self.refresh_fleet()

        self.app.push_screen(ChoiceScreen("Show fleet run", [(str(run.path), run.name) for run in found]), chosen)

    def action_attach(self) -> None:
        if self.run is not None:
            self.console.attach(self.run)

    def action_stop(self) -> None:
        """Stop a local fleet (its supervising process stops every node and the SuperLink)."""
        pid = supervisor(self.run) if self.run is not None else None
        if pid is None:
            self.say("no local fleet runs this run here (a served fleet stops where it was started)")
            return
        os.kill(pid, signal.SIGTERM)
        self.say(f"stopping the local fleet (pid {pid}) ...")
