"""A chat child that answers from a script, for snapshots (a real child's timings differ run to run):
the same interface as engine.chat_child.ChatChild, no process."""

from __future__ import annotations

import queue
from collections.abc import Iterator, Mapping
from pathlib import Path

from forge_tui.engine.chat import Answer, Messages, Sampling
from forge_tui.engine.chat_child import Answered, Failed, Ready, Reply, Token

SCRIPT = {"base": "Pressure-reducing valves regulate the flow of a fluid through a pipe.",
          "tuned": "A PRV holds the downstream pressure at its set point, 3.5 bar in zone N2; it is serviced every 12 months."}


class ScriptedChatChild:
    def __init__(self, argv: list[str], log: Path) -> None:
        self.sides = ("base", "tuned") if "--base-only" not in argv else ("base",)
        self._replies: queue.Queue[Reply | None] = queue.Queue()
        self._replies.put(Ready("20260901-0800-quick", self.sides, "cpu", 6.8))
        self._asks = 0

    def ask(self, conversations: Mapping[str, Messages], sampling: Sampling) -> int:
        """The scripted answers; a question that says "fail" is answered with the child's refusal."""
        self._asks += 1
        if "fail" in next(iter(conversations.values()))[-1]["content"]:
            self._replies.put(Failed(self._asks, "the chat template refuses this conversation"))
            return self._asks
        for side in conversations:
            words = SCRIPT[side].split(" ")
            for word in words:
                self._replies.put(Token(self._asks, side, word + " "))
            self._replies.put(Answered(self._asks, Answer(side, SCRIPT[side], len(words) + 3, 1.25, 0.08, "eos")))
        return self._asks

    def cancel(self, ask: int) -> None:
        """Everything is answered at once: nothing to cancel."""

    def replies(self) -> Iterator[Reply]:
        while (reply := self._replies.get()) is not None:
            yield reply

    def last_error(self) -> str:
        return ""

    def close(self) -> None:
        self._replies.put(None)

    def wait(self) -> int:
        return 0
