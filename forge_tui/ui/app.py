"""The Forge TUI application."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from forge_tui.config import Config
from forge_tui.engine.models import EMBEDDED, describe_directory, embedded_path
from forge_tui.ui.screens.datasets import DatasetsScreen
from forge_tui.ui.screens.help import HelpScreen


class ForgeApp(App):
    """Operator console: one screen per step of the fine-tuning cycle."""

    TITLE = "Forge TUI"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("question_mark", "help", "Help", id="app.help"),
    ]

    def __init__(self, config: Config, dataset: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.dataset = dataset

    def on_mount(self) -> None:
        model = describe_directory(embedded_path(), name=EMBEDDED.name, embedded=True)
        state = "ready" if model.provisioned else "not provisioned: run forge-tui models fetch"
        self.title = f"Forge TUI  model {model.name} ({state})"
        self.push_screen(DatasetsScreen(self.config, self.dataset))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
