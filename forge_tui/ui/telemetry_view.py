"""The Monitor's telemetry panel as Textual markup (no widgets here: unit-testable).

The headline is the thermal headroom, coloured against the guard's own thresholds: below
`pause_below` the run would pause (error colour), below `resume_above` it would not yet resume
(warning), above both it is fine (success). Theme variables keep the colours readable in every theme.
"""

from __future__ import annotations

from forge_tui.config import ThermalConfig
from forge_tui.engine.telemetry.snapshot import Snapshot

GIB = 1024**3


def headroom_colour(celsius: float, thermal: ThermalConfig) -> str:
    if celsius < thermal.pause_below:
        return "$error"
    return "$warning" if celsius < thermal.resume_above else "$success"


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.1f}"


def _headline(snapshot: Snapshot, thermal: ThermalConfig) -> list[str]:
    room = snapshot.headroom
    if room is None:
        return ["[b]HEADROOM[/b] unknown", "no sensor with a trip point"]
    colour = headroom_colour(room.celsius, thermal)
    return [f"[b]HEADROOM [{colour}]{room.celsius:.1f} °C[/][/b]",
            f"{room.sensor[:16]} {room.temperature:.1f}/{room.limit:.0f} °C"]


def _hottest(snapshot: Snapshot, thermal: ThermalConfig, count: int = 3) -> list[str]:
    """The sensors nearest their limits, after the headline's."""
    ranked = sorted((s for s in snapshot.sensors or () if s.headroom is not None), key=lambda s: s.headroom)
    return [f"  [{headroom_colour(s.headroom, thermal)}]{s.name[:14]:<14} {s.celsius:5.1f} °C[/]"
            for s in ranked[1:1 + count]]


def _load(snapshot: Snapshot) -> list[str]:
    lines = []
    for gpu in snapshot.gpus or ():
        load = "-" if gpu.load_percent is None else f"{gpu.load_percent:.0f}%"
        memory = "" if gpu.memory_total_bytes is None else f" {_gib(gpu.memory_used_bytes)}/{_gib(gpu.memory_total_bytes)}G"
        lines.append(f"GPU  {load:>4}{memory}")
    cores = [c for c in snapshot.cpu_percent or () if c is not None]
    if cores:
        lines.append(f"CPU  {sum(cores) / len(cores):3.0f}% of {len(snapshot.cpu_percent or ())} cores")
    memory = snapshot.memory
    if memory is not None:
        lines.append(f"RAM  {_gib(memory.ram_used_bytes)}/{_gib(memory.ram_total_bytes)}G")
        if memory.swap_total_bytes:
            lines.append(f"swap {_gib(memory.swap_used_bytes)}/{_gib(memory.swap_total_bytes)}G")
    if snapshot.power_total_watts is not None:
        lines.append(f"power {snapshot.power_total_watts:.1f} W" + (f" ({snapshot.power_mode})" if snapshot.power_mode else ""))
    return lines


def telemetry_markup(snapshot: Snapshot | None, thermal: ThermalConfig, problem: str | None = None) -> str:
    """Panel text for the latest fresh snapshot; None says the sensors stopped answering."""
    if snapshot is None:
        return f"[b $error]no telemetry[/]\n{problem}" if problem else "[b $warning]no fresh reading[/]\n(sensors not answering)"
    lines = _headline(snapshot, thermal) + _hottest(snapshot, thermal) + _load(snapshot)
    throttle = snapshot.throttle
    if throttle is not None:
        lines.append("[b $error]THROTTLED[/] " + ", ".join(throttle.reasons) if throttle.active else "throttle: no")
    lines.append(f"[dim]source {snapshot.source}[/]")
    return "\n".join(lines)
