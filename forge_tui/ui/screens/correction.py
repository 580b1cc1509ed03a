"""The correction editor: the tuned model's answer, for the operator to rewrite; ctrl+s saves it to
the corrections dataset (engine/corrections.py), escape leaves without saving."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from forge_tui.config import Config
from forge_tui.engine.corrections import Correction, corrections_folder, save_correction
from forge_tui.engine.runs import RunDir
from forge_tui.errors import ForgeError


class CorrectionScreen(ModalScreen[None]):
    """Dismisses with nothing; a saved correction is told in a notification (file and line)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save correction", id="correction.save", priority=True),
        Binding("escape", "dismiss", "Cancel", id="correction.cancel"),
    ]

    def __init__(self, config: Config, run: RunDir | None, question: Correction) -> None:
        super().__init__()
        self.config, self.run, self.question = config, run, question

    def compose(self) -> ComposeResult:
        with Vertical(id="correction"):
            yield Static(f"[b]Correct the tuned answer[/b]  (ctrl+s saves to "
                         f"{escape(str(corrections_folder(self.config)))}/corrections.jsonl, escape cancels)\n"
                         f"[b]Q[/b] {escape(self.question.conversation[-1]['content'])}", id="correction-question")
            yield TextArea(self.question.rejected, id="correction-answer", soft_wrap=True, show_line_numbers=False)

    def on_mount(self) -> None:
        editor = self.query_one(TextArea)
        editor.select_all()  # typing replaces the wrong answer; an arrow key keeps it to edit
        editor.focus()

    def action_save(self) -> None:
        corrected = Correction(self.question.conversation, self.question.rejected, self.query_one(TextArea).text,
                               self.question.origin)
        try:
            path, line = save_correction(self.config, self.run, corrected)
        except (ForgeError, OSError) as exc:
            self.notify(str(exc), title="Correction not saved", severity="error")
            return
        audited = f"; recorded in {self.run.name}'s audit trail" if self.run else ""
        self.notify(f"saved to {path}:{line}{audited}. Train on that folder to learn from it.", title="Correction saved")
        self.dismiss()
