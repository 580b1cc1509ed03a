"""What the Monitor shows of a run, folded from its event log (no textual here: unit-testable).

The runner writes events; the UI tails them and folds each batch into a RunView. The view keeps the
loss history for the chart (thinned to MAX_POINTS so a long run costs the same to draw) and the
lines of the event log an operator reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

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

    def apply(self, events: list[dict[str, Any]]) -> list[str]:
        """Fold a batch of events in; returns the log lines they added."""
        added = []
        for event in events:
            handler = _HANDLERS.get(event.get("type", ""))
            if handler:
                handler(self, event)
            line = log_line(event)
            if line:
                added.append(line)
        self.log = (self.log + added)[-LOG_LINES:]
        if len(self.losses) > MAX_POINTS:
            self.losses = self.losses[::2]
        return added

    @property
    def progress(self) -> float | None:
        return self.step / self.total if self.total else None

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
            f"loss {_num(self.loss)}", f"eval {_num(self.eval_loss)}",
            f"lr {'-' if self.lr is None else f'{self.lr:.1e}'}",
            f"{'-' if self.tokens_per_second is None else f'{self.tokens_per_second:.0f}'} tok/s",
        ])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _started(view: RunView, event: dict[str, Any]) -> None:
    view.state, view.device, view.precision = "running", event.get("device"), event.get("precision")
    view.total, view.guard, view.error = event.get("total_steps"), None, None


def _step(view: RunView, event: dict[str, Any]) -> None:
    view.step, view.total, view.epoch = event["step"], event["total_steps"], event["epoch"]
    view.loss, view.lr = event["loss"], event["lr"]
    view.tokens_per_second, view.eta_seconds = event["tokens_per_second"], event["eta_seconds"]
    view.losses.append((event["step"], event["loss"]))


def _eval(view: RunView, event: dict[str, Any]) -> None:
    view.eval_loss = event["eval_loss"]
    view.evals.append((event["step"], event["eval_loss"]))


def _paused(view: RunView, event: dict[str, Any]) -> None:
    view.state, view.guard = "paused", f"paused: {event['reason']}"


def _resumed(view: RunView, event: dict[str, Any]) -> None:
    view.state, view.guard = "running", None


def _ended(state: str) -> Any:
    def handler(view: RunView, event: dict[str, Any]) -> None:
        view.state, view.guard = state, None
        if state == "failed":
            view.error = event.get("message")
    return handler


_HANDLERS = {
    "run_started": _started, "step": _step, "eval": _eval, "paused": _paused, "resumed": _resumed,
    "finished": _ended("finished"), "stopped": _ended("stopped"), "error": _ended("failed"),
}


def log_line(event: dict[str, Any]) -> str | None:
    """The event log as an operator reads it; steps are left to the chart and the headline."""
    kind = event.get("type")
    stamp = time.strftime("%H:%M:%S", time.localtime(event.get("time", 0)))
    text = {
        "run_started": lambda e: f"started on {e.get('device')} ({e.get('precision')}), {e.get('total_steps')} steps",
        "eval": lambda e: f"eval loss {e['eval_loss']:.4f} at step {e['step']}",
        "checkpoint": lambda e: f"checkpoint at step {e['step']}",
        "paused": lambda e: f"paused at step {e['step']}: {e['reason']}",
        "resumed": lambda e: f"resumed at step {e['step']}: {e['reason']}",
        "warning": lambda e: f"warning: {e['message']}",
        "error": lambda e: f"error: {e['message']}" + (f" (last checkpoint {e['last_checkpoint']})" if e.get("last_checkpoint") else ""),
        "stopped": lambda e: f"stopped at step {e['step']} ({e.get('reason', 'operator')})",
        "finished": lambda e: f"finished at step {e['step']}, eval loss {_num(e.get('eval_loss'))}",
        "bench_started": lambda e: f"benchmark started: {e['items']} items",
        "bench_result": lambda e: f"benchmark: composite {e['base']:.1f} -> {e['tuned']:.1f} ({e['delta']:+.1f}); see Compare (4)",
    }.get(kind or "")
    return f"{stamp} {text(event)}" if text else None
