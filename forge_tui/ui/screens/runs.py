"""Runs: every run with its state; attach to one, stop it, resume it, export it, open its benchmark.

The table is refreshed from the run directories every few seconds by a thread worker (each row
reads a run's event log). Stopping writes the run's stop request, which the runner honours at the
next step after a checkpoint; resuming starts a detached runner, which outlives this console.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from forge_tui.config import Config
from forge_tui.engine.runs import RunDir, list_runs
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.jobs import last_line, run_cli

REFRESH_SECONDS = 3.0
COLUMNS = (("run", 21), ("state", 12), ("step", 7), ("loss", 5), ("eval", 5), ("note", 40))


def row(status: dict[str, Any]) -> tuple[str, ...]:
    """One table row, short enough for 80 columns."""
    total = status.get("total_steps")
    step = f"{status.get('step', 0)}/{total}" if total else "-"
    bench = status.get("bench")
    scored = f"bench {bench['base']:.1f} -> {bench['tuned']:.1f}" if bench else None
    note = status.get("error") or status.get("reason") or scored or status.get("preset") or ""
    return (status["name"], status["state"], step, _num(status.get("loss")), _num(status.get("eval_loss")), str(note)[:40])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class RunsScreen(Screen):
    BINDINGS = [
        Binding("a", "attach", "Attach", id="runs.attach"),
        Binding("s", "stop", "Stop", id="runs.stop"),
        Binding("r", "resume", "Resume", id="runs.resume"),
        Binding("b", "bench", "Benchmark", id="runs.bench"),
        Binding("e", "export", "Export", id="runs.export"),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.statuses: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-message")
        yield footer()

    def on_mount(self) -> None:
        self.sub_title = nav("runs")
        table = self.query_one(DataTable)
        for label, width in COLUMNS:  # fixed widths: refreshing rows never moves the columns
            table.add_column(label, width=width)
        self.set_interval(REFRESH_SECONDS, self.refresh_runs)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def refresh_runs(self) -> None:
        """Re-read every run (each one's whole event log), only while this screen is shown: the
        console must not read logs behind the operator's back while a run trains."""
        if not self.is_current:
            return
        statuses = list_runs(self.config)
        self.app.call_from_thread(self._show, statuses)

    def _show(self, statuses: list[dict[str, Any]]) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        self.statuses = statuses
        table.clear()
        for status in statuses:
            table.add_row(*row(status), key=status["path"])
        if statuses:
            table.move_cursor(row=min(cursor, len(statuses) - 1))
        else:
            self.say("no runs yet: pick a dataset (1), then Train (2)")

    def selected(self) -> dict[str, Any] | None:
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
            self.app.attach(RunDir(Path(status["path"])))

    def _selected_in(self, states: tuple[str, ...], refusal: str) -> dict[str, Any] | None:
        """The selected run when its state is one of `states`; otherwise say why not."""
        status = self.selected()
        if status is not None and status["state"] not in states:
            self.say(f"{status['name']} is {status['state']}: {refusal}")
            return None
        return status

    def action_stop(self) -> None:
        status = self._selected_in(("running", "paused"), "nothing to stop")
        if status is not None:
            RunDir(Path(status["path"])).request_stop()
            self.say(f"stop asked: {status['name']} checkpoints and stops at its next step (resumable)")

    def action_bench(self) -> None:
        status = self.selected()
        if status:
            self.app.compare(RunDir(Path(status["path"])))

    def action_export(self) -> None:
        """A merged full model in RUN/merged, for serving without peft."""
        status = self._selected_in(("finished",), "only a finished run can be exported")
        if status is not None:
            target = Path(status["path"]) / "merged"
            self.say(f"exporting {status['name']} to {target} ...")
            self.in_child("export", status["path"], "--merged", str(target), done=f"merged model written to {target}")

    def action_resume(self) -> None:
        status = self.selected()
        if status is not None:
            self.say(f"resuming {status['name']} ...")
            self.in_child("resume", status["path"], "--detach",
                          done=f"{status['name']} resumed in its own process: enter attaches the Monitor")

    @work(thread=True, group="child", exit_on_error=False)
    def in_child(self, *command: str, done: str | None = None) -> None:
        """A forge-tui command in a child process (resume refuses a running or finished run, export
        an unfinished one, each with the reason), its last word shown below the table."""
        result = run_cli(self.config, *command)
        said = done if done and result.returncode == 0 else last_line(result)
        self.app.call_from_thread(self.say, said)
        self.app.call_from_thread(self.refresh_runs)
