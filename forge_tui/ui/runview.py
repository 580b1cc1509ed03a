"""What the Monitor shows of a run, folded from its event log (no textual here: unit-testable).

The runner writes events; the UI tails them and folds each batch into a RunView. The view keeps the
loss history for the chart (thinned to MAX_POINTS so a long run costs the same to draw) and the
lines of the event log an operator reads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from forge_tui.engine.events import Record
from forge_tui.engine.eventtext import describe
from forge_tui.units import duration, figure

MAX_POINTS = 400
LOG_LINES = 200


@dataclass
class RunView:
    name: str
    state: str = "created"
    step: int = 0
    total: int | None = None
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    lr: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    device: str | None = None
    precision: str | None = None
    guard: str | None = None          # "paused: ..." while the thermal guard holds the run
    error: str | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def apply(self, events: list[Record]) -> list[str]:
        """Fold a batch of events in; returns the log lines they added."""
        added = []
        for event in events:
            handler = _HANDLERS.get(event.get("type", ""))
            if handler:
                with contextlib.suppress(KeyError, TypeError):  # an event missing fields is logged, not folded
                    handler(self, event)
            line = log_line(event)
            if line:
                added.append(line)
        self.log = (self.log + added)[-LOG_LINES:]
        if len(self.losses) > MAX_POINTS:
            self.losses = self.losses[::2]
        return added

    def headline(self) -> str:
        """One line: state, step, epoch, ETA."""
        parts = [self.name, self.state.upper()]
        if self.total:
            parts.append(f"step {self.step}/{self.total}")
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch:.2f}")
        if self.state == "running" and self.eta_seconds is not None:
            parts.append(f"ETA {duration(self.eta_seconds)}")
        return "  ".join(parts)

    def figures(self) -> str:
        """One line: loss, eval loss, learning rate, throughput."""
        return "  ".join([
            f"loss {figure(self.loss, 3)}", f"eval {figure(self.eval_loss, 3)}",
            f"lr {'-' if self.lr is None else f'{self.lr:.1e}'}", f"{figure(self.tokens_per_second, 0)} tok/s",
        ])


def _started(view: RunView, event: Record) -> None:
    view.state, view.device, view.precision = "running", event.get("device"), event.get("precision")
    view.total, view.guard, view.error = event.get("total_steps"), None, None


def _step(view: RunView, event: Record) -> None:
    view.step, view.total, view.epoch = event["step"], event["total_steps"], event["epoch"]
    view.loss, view.lr = event["loss"], event["lr"]
    view.tokens_per_second, view.eta_seconds = event["tokens_per_second"], event["eta_seconds"]
    view.losses.append((event["step"], event["loss"]))


def _eval(view: RunView, event: Record) -> None:
    view.eval_loss = event["eval_loss"]
    view.evals.append((event["step"], event["eval_loss"]))


def _paused(view: RunView, event: Record) -> None:
    view.state, view.guard = "paused", f"paused: {event['reason']}"


def _resumed(view: RunView, event: Record) -> None:
    view.state, view.guard = "running", None


def _ended(state: str) -> Callable[[RunView, Record], None]:
    def handler(view: RunView, event: Record) -> None:
        view.state, view.guard = state, None
        if state == "failed":
            view.error = event.get("message")
    return handler


_HANDLERS = {
    "run_started": _started, "step": _step, "eval": _eval, "paused": _paused, "resumed": _resumed,
    "finished": _ended("finished"), "stopped": _ended("stopped"), "error": _ended("failed"),
}


MONITOR_SKIPS = frozenset({"step", "bench_progress"})  # shown by the headline, the chart and the progress bar


def log_line(event: Record) -> str | None:
    """The event log as an operator reads it on the Monitor: the event's words, stamped with its time."""
    if event.get("type") in MONITOR_SKIPS:
        return None
    text = describe(event)
    return f"{time.strftime('%H:%M:%S', time.localtime(event.get('time', 0)))} {text}" if text else None
