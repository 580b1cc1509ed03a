"""Column mapping: when a dataset's records are in no format Forge knows, the operator says which of
their keys holds what (the question, the answer, the conversation, ...), one choice per key of the
first record. The mapping goes to every check, dry run and launch of that dataset as `--map`, so a
run records it in its config and its dataset manifest (it can be reproduced)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import islice
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, Static

from forge_tui.config import MAPPABLE, toml_value
from forge_tui.engine.data import dataset_files
from forge_tui.engine.readers import RawRecord, read_raw

KEYS_SHOWN = 40
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def first_record_keys(path: Path) -> list[str]:
    """The keys of the first record of a dataset's first file (nothing when it has no readable object)."""
    files = dataset_files(path)
    records = (item for item in read_raw(files[0]) if isinstance(item, RawRecord)) if files else iter(())
    first = next(islice(records, 1), None)
    return [str(key) for key in first.value][:KEYS_SHOWN] if first is not None and isinstance(first.value, dict) else []


def columns_toml(columns: Mapping[str, str]) -> str:
    """A mapping as the config file's line: `[data] columns = { question = "instruction", ... }`."""
    pairs = ", ".join(f"{key if BARE_KEY.fullmatch(key) else toml_value(key)} = {toml_value(target)}"
                      for key, target in columns.items())
    return f"[data] columns = {{ {pairs} }}"


class ColumnsScreen(ModalScreen[dict[str, str] | None]):
    """One row per key: the field it is read as, or metadata (kept with the sample, not trained on)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel", id="columns.cancel"),
        Binding("ctrl+s", "apply", "Apply", id="columns.apply"),
    ]

    def __init__(self, path: Path, keys: list[str], current: Mapping[str, str]) -> None:
        super().__init__()
        self.path = path
        self.keys = keys
        self.current = dict(current)

    def compose(self) -> ComposeResult:
        with Vertical(id="columns"):
            yield Static(f"[b]Map the columns of {escape(self.path.name)}[/b]\n"
                         "Forge reads instruction + output, prompt + completion, messages, conversations or text. "
                         "Choose what each key of the first record is; the rest stays metadata.", id="columns-intro")
            with VerticalScroll(id="columns-rows"):
                for index, key in enumerate(self.keys):
                    with Horizontal(classes="columns-row"):
                        yield Label(escape(key), classes="columns-key")
                        yield Select([(field, field) for field in MAPPABLE], prompt="metadata", id=f"columns-{index}", compact=True,
                                     value=self.current.get(key, Select.NULL))
            with Horizontal(id="columns-buttons"):
                yield Button("Apply (ctrl+s)", variant="primary", id="columns-apply")
                yield Button("Cancel (esc)", id="columns-cancel")

    def on_mount(self) -> None:
        if self.keys:
            self.query_one("#columns-0", Select).focus()

    def chosen(self) -> dict[str, str]:
        picks = ((key, self.query_one(f"#columns-{index}", Select).value) for index, key in enumerate(self.keys))
        return {key: str(value) for key, value in picks if value is not Select.NULL}

    def action_apply(self) -> None:
        self.dismiss(self.chosen())

    @on(Button.Pressed, "#columns-apply")
    def _apply(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#columns-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
