"""One stream of events: what the engine says, one JSON object per line in RUN_DIR/events.jsonl.

The CLI prints them, the TUI tails them, tests assert on them; because the log is a file, a console
that was closed can reattach and a crashed runner leaves its story behind. Every event has `type`
and `time` (Unix seconds); the other fields per type are documented on each class and in the README.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from forge_tui.engine.fsutil import end_torn_line

Record = dict[str, Any]  # an event as it is written and read back: `type`, `time` and its fields


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> Record:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    """The runner began (or resumed) work: what runs where, stated plainly."""

    type: ClassVar[str] = "run_started"
    run: str
    mode: str            # "qlora-nf4" | "lora"
    device: str          # "cpu" | the GPU's name, e.g. "NVIDIA H100 80GB HBM3" or "Orin"
    precision: str       # e.g. "nf4 weights, bf16 compute" | "fp32"
    model: str
    total_steps: int
    start_step: int
    train_samples: int
    eval_samples: int
    effective_batch: int
    threads: int
    trainable_parameters: int
    memory_estimate_bytes: int
    memory_available_bytes: int
    telemetry_source: str | None = None      # jtop | nvml | sysfs | replay
    power_mode: str | None = None            # Jetson nvpmodel at the start, e.g. "MAXN"
    jetson_clocks: bool | None = None
    thermal_headroom_c: float | None = None
    thermal_guard: bool = False              # whether the guard can act (a sensor with a trip point)
    setup_seconds: float | None = None       # from the runner's start to this event (model load, rehearsal answers)
    estimate_seconds: float | None = None    # a fresh run's whole time, from this device's measured speeds (eta.py)


@dataclass(frozen=True)
class Step(Event):
    type: ClassVar[str] = "step"
    step: int
    total_steps: int
    epoch: float
    loss: float
    lr: float
    tokens: int              # tokens in this step's batch, prompts included, padding not
    tokens_per_second: float
    eta_seconds: float


@dataclass(frozen=True)
class Eval(Event):
    type: ClassVar[str] = "eval"
    step: int
    eval_loss: float
    eval_tokens: int


@dataclass(frozen=True)
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    step: int
    path: str
    seconds: float


@dataclass(frozen=True)
class GuardEvent(Event):
    """The thermal guard acted; `details` holds the temperatures that made it act."""

    step: int
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Paused(GuardEvent):
    """Paused after a checkpoint, waiting for the device to cool."""

    type: ClassVar[str] = "paused"


@dataclass(frozen=True)
class Resumed(GuardEvent):
    type: ClassVar[str] = "resumed"


@dataclass(frozen=True)
class RunWarning(Event):
    """Something the operator should know that does not stop the run (or the benchmark)."""

    type: ClassVar[str] = "warning"
    message: str
    step: int | None = None


@dataclass(frozen=True)
class Error(Event):
    """The runner failed; the run can be resumed from `last_checkpoint`."""

    type: ClassVar[str] = "error"
    message: str
    step: int | None = None
    last_checkpoint: str | None = None


@dataclass(frozen=True)
class Stopped(Event):
    """The run stopped after a checkpoint and can be resumed: asked by the operator, or paused
    longer than the thermal guard's cap."""

    type: ClassVar[str] = "stopped"
    step: int
    checkpoint: str
    reason: str = "operator"
    details: dict[str, Any] = field(default_factory=dict)   # the temperatures, after a thermal stop


@dataclass(frozen=True)
class Finished(Event):
    type: ClassVar[str] = "finished"
    step: int
    adapter: str
    train_loss: float | None
    eval_loss: float | None
    seconds: float
    peak_memory_bytes: int   # CUDA: max allocated on the device; CPU: the runner's peak RSS


@dataclass(frozen=True)
class BenchStarted(Event):
    type: ClassVar[str] = "bench_started"
    items: int
    eval_file: str
    retention_file: str | None


@dataclass(frozen=True)
class BenchItem(Event):
    """One item answered by both models, with both answers and their scores."""

    type: ClassVar[str] = "bench_item"
    id: str
    category: str
    kind: str                 # eval | retention
    question: str
    reference: str
    facts: list[str]
    base: dict[str, Any]      # answer, facts, similarity, nll_sum, nll_tokens | correct
    tuned: dict[str, Any]


@dataclass(frozen=True)
class BenchProgress(Event):
    type: ClassVar[str] = "bench_progress"
    done: int
    total: int
    seconds: float


@dataclass(frozen=True)
class BenchResult(Event):
    type: ClassVar[str] = "bench_result"
    base: float               # composites, 0-100
    tuned: float
    delta: float
    ci95: list[float]         # of the delta
    result: str               # RUN/bench/result.json
    seconds: float


@dataclass(frozen=True)
class BenchFailed(Event):
    """The benchmark ended without a result; the run itself is still finished."""

    type: ClassVar[str] = "bench_failed"
    message: str


class EventLog:
    """Append-only writer. Each event is one line, flushed at once; milestones are fsynced."""

    DURABLE = frozenset({"run_started", "checkpoint", "stopped", "finished", "error", "paused", "bench_result", "bench_failed"})

    def __init__(self, path: Path) -> None:
        self.path = path
        end_torn_line(path)  # a writer killed mid-line before this one
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the log

    def emit(self, event: Event) -> Record:
        record = event.to_json()
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        if event.type in self.DURABLE:
            os.fsync(self._handle.fileno())
        return record

    def close(self) -> None:
        self._handle.close()


def read_events(path: Path) -> list[Record]:
    """Every complete event in a log (a torn last line, from a kill mid-write, is ignored)."""
    return EventTail(path).poll()


class EventTail:
    """Incremental reader: each `poll()` returns the events appended since the last one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[Record]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return [event for event in map(_parse, lines) if event is not None]


def _parse(line: bytes) -> Record | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and "type" in record else None
