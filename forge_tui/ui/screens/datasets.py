"""Datasets: browse sample_data/ and the configured folders, check one, preview its samples.

The check runs as `forge-tui data check --json` in a child process and the preview reads the file in
a thread worker, so a big file never freezes the screen.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    Header,
    Label,
    ListItem,
    ListView,
    Static,
    TabbedContent,
    TabPane,
)

from forge_tui.config import Config
from forge_tui.engine.corrections import corrections_folder
from forge_tui.engine.data import Reading, Sample, discover_datasets, read_dataset
from forge_tui.engine.datacheck import summary_lines
from forge_tui.paths import sample_data_dir
from forge_tui.ui.base import ForgeScreen
from forge_tui.ui.chrome import footer, nav
from forge_tui.ui.jobs import run_data_check
from forge_tui.ui.screens.columns import ColumnsScreen, columns_toml, first_record_keys

PREVIEW_SAMPLES = 12


def dataset_roots(config: Config) -> list[Path]:
    """sample_data/, the configured folders, and the folder of the operators' corrections (once it exists)."""
    roots = [sample_data_dir(), *(Path(d).expanduser() for d in config.data.dirs)]
    return [*roots, folder] if (folder := corrections_folder(config)) not in roots else roots


def dataset_label(path: Path) -> str:
    """Short enough for the 80-column list: the path below sample_data/, else folder/file."""
    root = sample_data_dir()
    return str(path.relative_to(root)) if path.is_relative_to(root) else f"{path.parent.name}/{path.name}"


def first_samples(path: Path, reading: Reading) -> list[Sample]:
    """The samples a preview shows: the first PREVIEW_SAMPLES that read cleanly."""
    samples = (item for item in read_dataset([path], reading) if isinstance(item, Sample))
    return list(islice(samples, PREVIEW_SAMPLES))


def render_preview(samples: list[Sample]) -> str:
    blocks = []
    for sample in samples:
        turns = "\n".join(f"  [b]{m.role}[/b]: {escape(m.content)}" for m in sample.messages)
        blocks.append(f"[dim]{escape(dataset_label(sample.file))}:{sample.line}[/dim]\n{turns}")
    return "\n\n".join(blocks) or "no samples could be read (see Check)"


def _where(problem: dict[str, Any]) -> str:
    return f"{problem['file']}:{problem['line']}" if problem["line"] else str(problem["file"])


def render_check(report: dict[str, Any]) -> str:
    """A `CheckReport.to_json()` document as the Check tab shows it."""
    status = "[b $success]OK[/]" if report["ok"] else f"[b $error]{report['problem_count']} problem(s)[/]"
    if any("map its columns" in p["message"] for p in report["problems"]):
        status += ": a shape Forge does not know; [b]m[/b] maps its columns to the fields Forge reads"
    problems = [f"[$error]{escape(p.get('where') or _where(p))}[/]: {escape(p['message'])}" for p in report["problems"]]
    hidden = report["problem_count"] - len(report["problems"])
    if hidden:
        problems.append(f"... and {hidden} more")
    body = "\n".join(escape(line) for line in summary_lines(report))
    verdict = "" if report["ok"] else "\n[b]This dataset cannot be used for training until these are fixed.[/b]"
    # paths under sample_data/ as the list shows them: 80 columns are few
    return ("\n".join([status, *problems, "", body]) + verdict).replace(f"{sample_data_dir()}{os.sep}", "")


class DatasetsScreen(ForgeScreen):
    """Pick a dataset and see whether it can be trained on."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "recheck", "Re-check", id="datasets.recheck"),
        Binding("p", "toggle_tab", "Check/Preview", id="datasets.toggle"),
        Binding("t", "train", "Train on it", id="datasets.train"),
        Binding("m", "map_columns", "Map columns", id="datasets.map"),
    ]

    def __init__(self, config: Config, selected: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.selected = selected.resolve() if selected else None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield ListView(id="dataset-list")
            with TabbedContent(id="dataset-tabs"):
                with TabPane("Check", id="tab-check"), VerticalScroll():
                    yield Static("pick a dataset on the left", id="check")
                with TabPane("Preview", id="tab-preview"), VerticalScroll():
                    yield Static("", id="preview")
        yield footer()

    def on_mount(self) -> None:
        self.sub_title = nav("datasets")
        files = discover_datasets(dataset_roots(self.config))
        if self.selected and self.selected not in files:
            files.insert(0, self.selected)
        listing = self.query_one(ListView)
        listing.extend(ListItem(Label(dataset_label(f)), name=str(f)) for f in files)
        if files:
            listing.index = files.index(self.selected) if self.selected in files else 0
            listing.focus()

    @on(ListView.Highlighted, "#dataset-list")
    def _highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is not None and event.item.name:
            self.selected = Path(event.item.name)
            self.console.dataset = self.selected  # what the Train screen will train on
            self.action_recheck()

    def action_recheck(self) -> None:
        if self.selected is None:
            return
        self.query_one("#check", Static).update(f"checking {escape(dataset_label(self.selected))} ...")
        self.query_one("#preview", Static).update("reading ...")
        self.check(self.selected)
        self.preview(self.selected)

    def action_train(self) -> None:
        if self.selected is not None:
            self.app.switch_mode("train")

    def _columns(self, path: Path) -> dict[str, str]:
        """The mapping a dataset is read with: the one chosen here (`m`), else the config's."""
        return self.console.mappings.get(path) or dict(self.config.data.columns)

    def action_map_columns(self) -> None:
        if self.selected is not None:
            self.offer_mapping(self.selected)

    @work(thread=True, exclusive=True, group="columns", exit_on_error=False, description="reading the first record")
    def offer_mapping(self, path: Path) -> None:
        keys = first_record_keys(path)
        self.app.call_from_thread(self._ask_mapping, path, keys)

    def _ask_mapping(self, path: Path, keys: list[str]) -> None:
        if not keys:
            self.notify(f"{dataset_label(path)}: no record to map (see Check)", severity="warning")
            return
        self.app.push_screen(ColumnsScreen(path, keys, self._columns(path)),
                             lambda chosen: self._mapped(path, chosen))

    def _mapped(self, path: Path, chosen: dict[str, str] | None) -> None:
        if chosen is None:
            return
        self.console.mappings[path] = chosen
        if chosen:
            self.notify(f"kept for this session and recorded with every run of it; to keep it for good, put "
                        f"{escape(columns_toml(chosen))} in your config file", title=f"{dataset_label(path)}: columns mapped")
        if path == self.selected:
            self.action_recheck()

    def action_toggle_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-preview" if tabs.active == "tab-check" else "tab-check"

    @work(thread=True, exclusive=True, group="check", exit_on_error=False, description="the dataset check")
    def check(self, path: Path) -> None:
        columns = self.console.mappings.get(path, {})
        self.settle(lambda: run_data_check(self.config, path, columns),
                    lambda report: self._show("#check", path, render_check(report)),
                    lambda reason: self._show("#check", path, f"[b $error]check failed[/]: {escape(reason)}"))

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False, description="the dataset preview")
    def preview(self, path: Path) -> None:
        reading = Reading(self.config.data.max_record_bytes, self._columns(path))
        self.settle(lambda: render_preview(first_samples(path, reading)), lambda text: self._show("#preview", path, text),
                    lambda reason: self._show("#preview", path, f"[b $error]preview failed[/]: {escape(reason)}"))

    def _show(self, target: str, path: Path, text: str) -> None:
        if path == self.selected:  # a late answer for a dataset no longer selected is dropped
            self.query_one(target, Static).update(text)
