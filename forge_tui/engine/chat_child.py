"""The chat child process and its line-delimited JSON protocol.

The console never imports torch: it starts `forge-tui chat [RUN] --serve`, which loads the model
once and then answers requests read from stdin, one JSON object per line, with replies on stdout:

    -> {"ask": ID, "conversations": {"base": [...], "tuned": [...]}, "sampling": {...}}
    -> {"cancel": ID}
    <- {"type": "ready", "name": ..., "sides": [...], "device": ..., "load_seconds": ...}
    <- {"type": "token", "ask": ID, "side": "base", "text": "..."}
    <- {"type": "answer", "ask": ID, "side": ..., "answer": ..., "tokens": ..., "seconds": ..., ...}
    <- {"type": "failed", "ask": ID or null, "message": ...}

The child exits when its stdin closes (the console quit or died); a request that fails is answered
with `failed` and the child goes on serving. `ChatChild` is the console's end of the pipe.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jinja2 import TemplateError

from forge_tui.engine.chat import Answer, Messages, Sampling
from forge_tui.errors import ForgeError

if TYPE_CHECKING:
    from forge_tui.engine.chat import ChatModel


@dataclass(frozen=True)
class Ready:
    name: str
    sides: tuple[str, ...]
    device: str
    load_seconds: float


@dataclass(frozen=True)
class Token:
    ask: int
    side: str
    text: str


@dataclass(frozen=True)
class Answered:
    ask: int
    answer: Answer


@dataclass(frozen=True)
class Failed:
    ask: int | None
    message: str


Reply = Ready | Token | Answered | Failed


def reply_to_json(reply: Reply) -> dict[str, Any]:
    if isinstance(reply, Answered):
        return {"type": "answer", "ask": reply.ask, **reply.answer.to_json()}
    kind = {Ready: "ready", Token: "token", Failed: "failed"}[type(reply)]
    return {"type": kind, **asdict(reply)}


def reply_from_json(record: dict[str, Any]) -> Reply:
    kind = record.get("type")
    if kind == "ready":
        return Ready(str(record["name"]), tuple(record["sides"]), str(record["device"]), float(record["load_seconds"]))
    if kind == "token":
        return Token(int(record["ask"]), str(record["side"]), str(record["text"]))
    if kind == "answer":
        return Answered(int(record["ask"]), Answer.from_json(record))
    if kind == "failed":
        return Failed(None if record.get("ask") is None else int(record["ask"]), str(record["message"]))
    raise ValueError(f"not a chat reply: {record!r}")


# --------------------------------------------------------------------------- the child's side


class _Requests:
    """stdin read on a thread: asks are queued; a cancel marks its ask; end of input ends everything."""

    def __init__(self, stream: IO[str]) -> None:
        self.asks: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.cancelled: set[int] = set()
        self.closed = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if not isinstance(request, dict):
                continue
            if "cancel" in request:
                self.cancelled.add(int(request["cancel"]))
            elif "ask" in request:
                self.asks.put(request)
        self.closed = True
        self.asks.put(None)

    def stopped(self, ask: int) -> Callable[[], bool]:
        return lambda: self.closed or ask in self.cancelled


def serve(model: ChatModel, load_seconds: float, stdin: IO[str], stdout: IO[str]) -> None:
    """Answer asks until stdin closes; sides interleave so both grow together on the console."""
    lock = threading.Lock()

    def send(reply: Reply) -> None:
        with lock:
            stdout.write(json.dumps(reply_to_json(reply)) + "\n")  # ASCII: whatever the locale's encoding
            stdout.flush()

    send(Ready(model.name, model.sides, model.device, round(load_seconds, 2)))
    requests = _Requests(stdin)
    while (request := requests.asks.get()) is not None:
        ask = int(request["ask"])
        try:
            sampling = Sampling.from_json(request["sampling"])
            model.answer(request["conversations"], sampling, _tokens_of(ask, send), requests.stopped(ask), interleave=True,
                         on_answer=_answers_of(ask, send))
        except (ForgeError, KeyError, TypeError, ValueError, RuntimeError, TemplateError) as exc:  # torch's (out of memory), the template's
            send(Failed(ask, str(exc) or type(exc).__name__))


def _tokens_of(ask: int, send: Callable[[Reply], None]) -> Callable[[str, str], None]:
    return lambda side, text: send(Token(ask, side, text))


def _answers_of(ask: int, send: Callable[[Reply], None]) -> Callable[[Answer], None]:
    return lambda answer: send(Answered(ask, answer))


# --------------------------------------------------------------------------- the console's side


class ChatChild:
    """The console's handle on a running chat child: requests in, replies out (a blocking iterator
    for a worker thread), its stderr kept in a log file for when it dies."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as errors:  # this child's own: its last line is its last word
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                            text=True, encoding="utf-8", bufsize=1)
        self._asks = 0

    def ask(self, conversations: Mapping[str, Messages], sampling: Sampling) -> int:
        self._asks += 1
        self._send({"ask": self._asks, "conversations": {k: list(v) for k, v in conversations.items()},
                    "sampling": sampling.to_json()})
        return self._asks

    def cancel(self, ask: int) -> None:
        self._send({"cancel": ask})

    def _send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise ForgeError(f"the chat process has exited ({self.last_error()})") from None

    def replies(self) -> Iterator[Reply]:
        """Every reply until the child exits (then the iterator ends)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                yield reply_from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a library printing to stdout: not ours

    def wait(self) -> int:
        """Its exit code, once it has exited."""
        return self.process.wait()

    def last_error(self) -> str:
        """The last line the child wrote to stderr (its error message), or its exit code."""
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            lines = []
        code = self.process.poll()
        return lines[-1].removeprefix("forge-tui: error: ") if lines else f"exit code {code}"

    def close(self) -> None:
        """End it now, without waiting on the console's thread: its stdin closed (what ends it when the
        console dies) and a kill (a child still loading its model reads stdin only once loaded). It
        writes no files; the thread reading its replies reaps it (`wait`)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        self.process.kill()
