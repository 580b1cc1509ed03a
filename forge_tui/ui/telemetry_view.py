"""The Monitor's telemetry panel as Textual markup (no widgets here: unit-testable).

The headline is the thermal headroom, coloured against the guard's own thresholds: below
`pause_below` the run would pause (error colour), below `resume_above` it would not yet resume
(warning), above both it is fine (success). Theme variables keep the colours readable in every theme.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from forge_tui.config import ThermalConfig
from forge_tui.engine.telemetry.snapshot import Snapshot
from forge_tui.units import gib

HISTORY = 12          # readings in each history graph (one per sampling interval): name, graph, value in 31 columns
BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], low: float | None = None, high: float | None = None) -> str:
    """One character per value, scaled between low and high (default: the values' own range)."""
    if not values:
        return ""
    low = min(values) if low is None else low
    high = max(values) if high is None else high
    span = high - low
    return "".join(BARS[0 if span <= 0 else min(len(BARS) - 1, max(0, int((v - low) / span * len(BARS))))] for v in values)


@dataclass
class TelemetryHistory:
    """The last readings of headroom, load and power, for the Monitor's short history graphs."""

    headroom: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    load: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    power: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    load_label: str = "load %"
    last_time: float | None = None

    def add(self, snapshot: Snapshot) -> None:
        if snapshot.time == self.last_time:
            return  # the same reading shown again: not a new point
        self.last_time = snapshot.time
        load = snapshot.load
        if load is not None:
            self.load_label = load[0]
        for series, value in ((self.headroom, snapshot.headroom.celsius if snapshot.headroom else None),
                              (self.load, load[1] if load else None), (self.power, snapshot.power_total_watts)):
            if value is not None:
                series.append(value)

    def lines(self) -> list[str]:
        """One line per graph: its name and unit, the history, the latest value."""
        graphs = [("headroom °C", self.headroom, None, None), (self.load_label, self.load, 0.0, 100.0),
                  ("power W", self.power, 0.0, None)]
        return [f"{name:<11} [$accent]{sparkline(list(series), low, high):<{HISTORY}}[/] {series[-1]:>5.1f}"
                for name, series, low, high in graphs if len(series) > 1]


def headroom_colour(celsius: float, thermal: ThermalConfig) -> str:
    return headroom_state(celsius, thermal)[0]


def headroom_state(celsius: float, thermal: ThermalConfig) -> tuple[str, str]:
    """The colour and the word for a headroom: the word carries the state where colours are alike
    (the night theme's reds differ only by brightness) or not seen."""
    if celsius < thermal.pause_below:
        return "$error", "PAUSE"
    if celsius < thermal.resume_above:
        return "$warning", "near pause"
    return "$success", "ok"


def _headline(snapshot: Snapshot, thermal: ThermalConfig) -> list[str]:
    room = snapshot.headroom
    if room is None:
        return ["[b]HEADROOM[/b] unknown", "no sensor with a trip point"]
    colour, word = headroom_state(room.celsius, thermal)
    return [f"[b]HEADROOM [{colour}]{room.celsius:.1f} °C {word}[/][/b]",
            f"{room.sensor[:16]} {room.temperature:.1f}/{room.limit:.0f} °C"]


def _hottest(snapshot: Snapshot, thermal: ThermalConfig, count: int = 3) -> list[str]:
    """The sensors nearest their limits, after the headline's."""
    ranked = sorted(((room, s) for s in snapshot.sensors or () if (room := s.headroom) is not None), key=lambda pair: pair[0])
    return [f"  [{headroom_colour(room, thermal)}]{s.name[:14]:<14} {s.celsius:5.1f} °C[/]" for room, s in ranked[1:1 + count]]


def _load(snapshot: Snapshot) -> list[str]:
    lines = []
    for gpu in snapshot.gpus or ():
        load = "-" if gpu.load_percent is None else f"{gpu.load_percent:.0f}%"
        used = "" if gpu.memory_total_bytes is None else f" {gib(gpu.memory_used_bytes)}/{gib(gpu.memory_total_bytes)}G"
        lines.append(f"GPU  {load:>4}{used}")
    cores = [c for c in snapshot.cpu_percent or () if c is not None]
    if cores:
        lines.append(f"CPU  {sum(cores) / len(cores):3.0f}% of {len(snapshot.cpu_percent or ())} cores")
    memory = snapshot.memory
    if memory is not None:
        lines.append(f"RAM  {gib(memory.ram_used_bytes)}/{gib(memory.ram_total_bytes)}G")
        if memory.swap_total_bytes:
            lines.append(f"swap {gib(memory.swap_used_bytes)}/{gib(memory.swap_total_bytes)}G")
    if snapshot.power_total_watts is not None:
        lines.append(f"power {snapshot.power_total_watts:.1f} W" + (f" ({snapshot.power_mode})" if snapshot.power_mode else ""))
    return lines


def telemetry_markup(snapshot: Snapshot | None, thermal: ThermalConfig, problem: str | None = None,
                     history: TelemetryHistory | None = None) -> str:
    """Panel text for the latest fresh snapshot; None says the sensors stopped answering."""
    if snapshot is None:
        return f"[b $error]no telemetry[/]\n{problem}" if problem else "[b $warning]no fresh reading[/]\n(sensors not answering)"
    graphs = history.lines() if history else []
    lines = _headline(snapshot, thermal) + graphs + _hottest(snapshot, thermal) + _load(snapshot)
    throttle = snapshot.throttle
    if throttle is not None:
        lines.append("[b $error]THROTTLED[/] " + ", ".join(throttle.reasons) if throttle.active else "throttle: no")
    lines.append(f"[dim]source {snapshot.source}[/]")
    return "\n".join(lines)
