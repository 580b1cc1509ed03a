"""The Chat screen with its real child process on the tiny trained run, at 80x24: both answers stream
(stacked, the terminal being narrow), escape cancels, a correction is saved, a dead child is told and
the screen stays usable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Input, TextArea

from forge_tui.config import load_config
from forge_tui.engine.chat import Answer, Sampling
from forge_tui.engine.corrections import corrections_folder
from forge_tui.errors import BadInput
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.screens import chat as chat_screen
from forge_tui.ui.screens.chat import ChatScreen, sampling_from, timing
from forge_tui.ui.screens.choice import ChoiceScreen
from forge_tui.ui.screens.correction import CorrectionScreen
from tests.fakes.chat_child import ScriptedChatChild
from tests.helpers import shown, text_of, wait_for


async def _ask(pilot, app: ForgeApp, question: str) -> None:
    app.screen.query_one("#chat-question", Input).value = question
    app.screen.query_one("#chat-question", Input).focus()
    await pilot.press("enter")


async def test_both_sides_stream_cancel_and_a_correction_is_saved(tiny_config: Path, trained: Path) -> None:
    config = load_config(tiny_config)
    app = ForgeApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        screen = shown(app, ChatScreen)
        await wait_for(pilot, lambda: "loaded in" in text_of(app, "#chat-status"), tries=1200)
        assert trained.name in text_of(app, "#chat-status")
        assert screen.query_one("#chat-answers").has_class("stacked")   # 80 columns: one answer above the other
        screen.query_one("#chat-max", Input).value = "5"
        await _ask(pilot, app, "Which pump feeds the north reservoir?")
        await wait_for(pilot, lambda: all("tokens" in text_of(app, f"#chat-{side}") for side in ("base", "tuned")), tries=1200)
        assert "Which pump feeds the north reservoir?" in text_of(app, "#chat-tuned")
        assert screen.histories["tuned"][-1]["role"] == "assistant"

        screen.query_one("#chat-max", Input).value = "8000"
        await _ask(pilot, app, "And the south one?")
        await wait_for(pilot, lambda: bool(screen.pending.get("tuned")), tries=1200)   # streaming
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen.asking is None, tries=1200)
        assert "cancelled" in text_of(app, "#chat-base")
        assert "cancelled" in text_of(app, "#chat-tuned")
        assert len(screen.histories["tuned"]) == 4      # two questions, two answers: the conversation goes on

        await pilot.press("escape", "c")                 # leave the field, then correct the tuned answer
        await wait_for(pilot, lambda: isinstance(app.screen, CorrectionScreen))
        app.screen.query_one(TextArea).text = "Pump P-204 feeds the south reservoir."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        saved = json.loads((corrections_folder(config) / "corrections.jsonl").read_text().splitlines()[-1])
        assert [m["content"] for m in saved["messages"]][-2:] == ["And the south one?", "Pump P-204 feeds the south reservoir."]
        assert saved["provenance"]["run"] == trained.name
        audit = [json.loads(line) for line in (trained / "audit.jsonl").read_text().splitlines()]
        assert audit[-1]["kind"] == "correction"

        await pilot.press("f2")                          # a new conversation
        assert screen.histories == {"base": [], "tuned": []}


async def test_a_child_that_dies_is_told_and_the_screen_stays_usable(tiny_config: Path, trained: Path) -> None:
    app = ForgeApp(load_config(tiny_config))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("6")
        screen = shown(app, ChatScreen)
        await wait_for(pilot, lambda: "loaded in" in text_of(app, "#chat-status"), tries=1200)
        assert not screen.query_one("#chat-answers").has_class("stacked")   # wide: side by side
        assert screen.child is not None
        screen.child.process.kill()
        await wait_for(pilot, lambda: "the chat process exited" in text_of(app, "#chat-status"), tries=400)
        await _ask(pilot, app, "Still there?")          # no child: said, nothing breaks
        await pilot.press("escape", "m")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("enter")                       # the run again: a new child
        await wait_for(pilot, lambda: "loaded in" in text_of(app, "#chat-status"), tries=1200)


async def test_a_question_not_answered_leaves_the_conversation_as_it_was(monkeypatch: pytest.MonkeyPatch, tiny_config: Path) -> None:
    monkeypatch.setattr(chat_screen, "ChatChild", ScriptedChatChild)
    app = ForgeApp(load_config(tiny_config))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        screen = shown(app, ChatScreen)
        await wait_for(pilot, lambda: "loaded in" in text_of(app, "#chat-status"))
        await _ask(pilot, app, "What does a PRV do?")
        await wait_for(pilot, lambda: screen.asking is None)
        answered = {side: list(history) for side, history in screen.histories.items()}
        await _ask(pilot, app, "Please fail.")
        await wait_for(pilot, lambda: screen.asking is None)
        assert screen.histories == answered          # the refused question is not in the history
        assert "not answered" in text_of(app, "#chat-base")     # no finished run here: the base model alone
        await _ask(pilot, app, "And when is it serviced?")
        await wait_for(pilot, lambda: screen.asking is None)
        assert [turn["role"] for turn in screen.histories["base"]] == ["user", "assistant"] * 2


def test_timing_text() -> None:
    assert timing(Answer("tuned", "x", 42, 2.0, 0.31, "eos")) == "42 tokens · 21.0 tok/s · first token 0.31 s"
    assert timing(Answer("base", "", 0, 0.1, None, "cancelled")) == "0 tokens · cancelled"


@pytest.mark.parametrize(("fields", "message"), [(("x", "1", "2"), "are numbers"), (("0", "0", "10"), "top-p 0.0"),
                                                 (("0", "1", "0"), "max new tokens 0"), (("0.5", "1", "2.5"), "whole number")])
def test_settings_out_of_range_are_refused(fields: tuple[str, str, str], message: str) -> None:
    assert sampling_from("0.7", "0.9", "64", 1) == Sampling(64, 0.7, 0.9, 1)
    with pytest.raises(BadInput, match=message):
        sampling_from(*fields, seed=0)
