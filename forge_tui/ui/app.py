"""The Forge TUI application: one screen per step of the cycle, each one key away."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.theme import Theme
from textual.worker import Worker, WorkerState

from forge_tui.config import Config
from forge_tui.engine.models import EMBEDDED, describe_directory, embedded_path
from forge_tui.engine.runs import RunDir
from forge_tui.engine.status import is_running, list_runs, newest
from forge_tui.engine.telemetry import Sampler, open_source
from forge_tui.engine.telemetry.snapshot import Snapshot
from forge_tui.errors import ForgeError
from forge_tui.paths import log_dir
from forge_tui.ui.jobs import accept_questions, stop_questions
from forge_tui.ui.screens.chat import ChatScreen
from forge_tui.ui.screens.compare import CompareScreen
from forge_tui.ui.screens.datasets import DatasetsScreen
from forge_tui.ui.screens.fleet import FleetScreen
from forge_tui.ui.screens.help import HelpScreen
from forge_tui.ui.screens.monitor import MonitorScreen
from forge_tui.ui.screens.runs import RunsScreen
from forge_tui.ui.screens.train import TrainScreen
from forge_tui.ui.themes import load_themes
from forge_tui.units import MIB

TERMINAL_CHECK_SECONDS = 2.0
WIDE = 100  # columns from which the header names the app before its screens
LOG_BYTES, LOG_BACKUPS = MIB, 3


def log_failure(what: str, error: BaseException | None) -> Path:
    """Append a failure and its traceback to the console's log (rotated at 1 MiB, three kept); the
    file is opened only when something fails, so a console that never fails writes nothing."""
    path = log_dir() / "console.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("forge_tui.console")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.error("%s failed", what, exc_info=error)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return path


class ForgeApp(App[None]):
    """Operator console. Training runs in a detached runner process; this process only reads its
    event log and the telemetry sampler, so closing it (or losing the SSH link) never stops a run."""

    TITLE = "Forge"
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: a subclass elsewhere finds it too
    SCREENS_GROUP = Binding.Group("screens", compact=True)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('datasets')", "Datasets", id="app.datasets", group=SCREENS_GROUP),
        Binding("2", "switch_mode('train')", "Train", id="app.train", group=SCREENS_GROUP),
        Binding("3", "switch_mode('monitor')", "Monitor", id="app.monitor", group=SCREENS_GROUP),
        Binding("4", "switch_mode('compare')", "Compare", id="app.compare", group=SCREENS_GROUP),
        Binding("5", "switch_mode('runs')", "Runs", id="app.runs", group=SCREENS_GROUP),
        Binding("6", "switch_mode('chat')", "Chat", id="app.chat", group=SCREENS_GROUP),
        Binding("7", "switch_mode('fleet')", "Fleet", id="app.fleet", group=SCREENS_GROUP),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, config: Config, dataset: Path | None = None, themes: list[Theme] | None = None) -> None:
        super().__init__()
        self.config = config
        self.dataset = dataset
        self.mappings: dict[Path, dict[str, str]] = {}
        for theme in load_themes() if themes is None else themes:
            self.register_theme(theme)
        self.theme = config.ui.theme
        self.sampler: Sampler | None = None
        self.telemetry_problem: str | None = None
        self.monitor = MonitorScreen(config)  # one each for the app's life: they keep following their run
        self.comparison = CompareScreen(config)

    def on_mount(self) -> None:
        accept_questions()
        model = describe_directory(embedded_path(), name=EMBEDDED.name, embedded=True)
        if not model.provisioned:
            self.notify(f"{model.name} is not provisioned: run `forge-tui models fetch` before training",
                        title="No model yet", severity="error", timeout=30)
        self.add_mode("datasets", lambda: DatasetsScreen(self.config, self.dataset))
        self.add_mode("train", lambda: TrainScreen(self.config))
        self.add_mode("monitor", lambda: self.monitor)
        self.add_mode("compare", lambda: self.comparison)
        self.add_mode("runs", lambda: RunsScreen(self.config))
        self.add_mode("chat", lambda: ChatScreen(self.config))
        self.add_mode("fleet", lambda: FleetScreen(self.config))
        self.switch_mode("datasets")
        self.start_telemetry()
        self.attach_latest()
        self._watch_terminal()

    # ------------------------------------------------------------------ what the screens use (ui.base.Console)
    def format_title(self, title: str, sub_title: str) -> Content:
        """'Forge — 1 Datasets 2 Train ...'; below WIDE columns the screens alone (the app's name gives
        way so that every screen's key fits in 80 columns)."""
        if sub_title and self.size.width < WIDE:
            return Content(sub_title)
        return super().format_title(title, sub_title)

    def attached_run(self) -> RunDir | None:
        return self.monitor.run

    def telemetry(self) -> tuple[Snapshot | None, str | None]:
        return (self.sampler.fresh() if self.sampler else None), self.telemetry_problem

    def worker_failed(self, worker: Worker[Any]) -> None:
        """The one handler for a worker that raised: a notification naming what failed, and the
        traceback in the console log."""
        what = worker.description or worker.name or "a background task"
        error = worker.error
        try:
            where = f"\ndetails in {log_failure(what, error)}"
        except OSError as exc:
            where = f"\n(the console log could not be written: {exc.strerror})"
        self.notify(f"{what} failed: {type(error).__name__}: {error}{where}", title="Something failed",
                    severity="error", timeout=30)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.worker_failed(event.worker)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The main actions in the command palette (ctrl+p), besides Textual's own (themes, keys)."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Datasets", "Browse, check and preview datasets (1)", lambda: self.switch_mode("datasets"))
        yield SystemCommand("Train", "Settings for a new run, and its launch (2)", lambda: self.switch_mode("train"))
        yield SystemCommand("Monitor", "The attached run beside the device's telemetry (3)", lambda: self.switch_mode("monitor"))
        yield SystemCommand("Compare", "Base vs tuned on the benchmark, item by item (4)", lambda: self.switch_mode("compare"))
        yield SystemCommand("Runs", "Every run: attach, stop, resume, export, benchmark (5)", lambda: self.switch_mode("runs"))
        yield SystemCommand("Chat", "Ask the base and the tuned model side by side (6)", lambda: self.switch_mode("chat"))
        yield SystemCommand("Fleet", "Fine-tuning across devices on Flower: nodes, rounds (7)", lambda: self.switch_mode("fleet"))
        run = self.monitor.run
        if run is not None and is_running(run):
            yield SystemCommand(f"Stop {run.name}", "Checkpoint, then stop (resumable)", run.request_stop)

    def attach(self, run: RunDir) -> None:
        """Follow `run` on the Monitor and show it."""
        self.monitor.attach(run)
        self.switch_mode("monitor")

    def compare(self, run: RunDir) -> None:
        """Show `run`'s benchmark on Compare."""
        self.comparison.open(run)
        self.switch_mode("compare")

    @work(thread=True, group="startup", exit_on_error=False, description="opening telemetry")
    def start_telemetry(self) -> None:
        """Open the configured source off the UI thread (jtop's client takes a moment to connect)."""
        telemetry = self.config.telemetry
        try:
            opened = open_source(telemetry.source, interval=telemetry.interval, speed=telemetry.replay_speed)
        except ForgeError as exc:
            self.telemetry_problem = str(exc)
            return
        self.sampler = Sampler(opened.source, telemetry.interval).start()

    @work(thread=True, group="startup", exit_on_error=False, description="looking for a run to attach")
    def attach_latest(self) -> None:
        """Reopened while a run is going (the console closed, the SSH link dropped): follow it."""
        live = newest([s for s in list_runs(self.config) if s.live])
        if live:
            self.call_from_thread(self.monitor.attach, live[0].run)

    def _watch_terminal(self) -> None:
        """Exit when the terminal goes away. A hang-up (SSH drop, closed window) sends SIGHUP; a
        terminal that vanished without one leaves stdin at EOF. Either way nobody is watching, and
        the run goes on in its own process."""
        if sys.__stdin__ is None or not sys.__stdin__.isatty():
            return  # headless (tests, textual-serve): no terminal to lose
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.exit)
        fd = sys.__stdin__.fileno()
        self.set_interval(TERMINAL_CHECK_SECONDS, lambda: None if _terminal_alive(fd) else self.exit())

    def on_unmount(self) -> None:
        stop_questions()  # a check still running has nobody left to answer
        if self.sampler is not None:
            self.sampler.stop()


def _terminal_alive(fd: int) -> bool:
    try:
        os.ttyname(fd)
        return os.isatty(fd)
    except OSError:
        return False
