"""Snapshots in words: the full report of `telemetry --once` and the one-line ticker."""

from __future__ import annotations

import textwrap
import time

from forge_tui.engine.telemetry import Fallback
from forge_tui.engine.telemetry.guard import describe
from forge_tui.engine.telemetry.snapshot import Snapshot
from forge_tui.units import gib

WIDTH = 80  # an SSH console


def _cpu(snapshot: Snapshot) -> str:
    loads = [load for load in snapshot.cpu_percent or () if load is not None]
    if not loads:
        return "-"
    return f"{sum(loads) / len(loads):.0f}% mean of {len(snapshot.cpu_percent or ())} cores (busiest {max(loads):.0f}%)"


def _memory(snapshot: Snapshot) -> str:
    memory = snapshot.memory
    if memory is None:
        return "-"
    parts = [f"RAM {gib(memory.ram_used_bytes)} / {gib(memory.ram_total_bytes)} GiB"]
    if memory.swap_total_bytes is not None:
        parts.append(f"swap {gib(memory.swap_used_bytes)} / {gib(memory.swap_total_bytes)} GiB")
    if memory.gpu_shared_bytes is not None:
        parts.append(f"GPU share {gib(memory.gpu_shared_bytes)} GiB")
    return ", ".join(parts)


def _gpus(snapshot: Snapshot) -> list[str]:
    lines = []
    for gpu in snapshot.gpus or ():
        load = "-" if gpu.load_percent is None else f"{gpu.load_percent:.0f}%"
        top = "-" if gpu.clock_max_mhz is None else f"{gpu.clock_max_mhz:.0f}"
        clock = "" if gpu.clock_mhz is None else f" at {gpu.clock_mhz:.0f}/{top} MHz"
        memory = "" if gpu.memory_total_bytes is None else f", memory {gib(gpu.memory_used_bytes)} / {gib(gpu.memory_total_bytes)} GiB"
        lines.append(f"{gpu.name}: {load}{clock}{memory}")
    return lines


def _sensor_lines(snapshot: Snapshot) -> list[str]:
    lines = [f"  {'SENSOR':<28} {'TEMP':>8}  {'LIMIT':<20} {'HEADROOM':>9}"]
    for sensor in snapshot.sensors or ():
        limit = sensor.limit
        where = f"{limit.kind} {limit.celsius:.1f} °C" if limit else "no trip point"
        room = sensor.headroom
        temp = "offline" if sensor.celsius is None else f"{sensor.celsius:.1f} °C"
        lines.append(f"  {sensor.name:<28} {temp:>8}  {where:<20} {'-' if room is None else f'{room:.1f} °C':>9}")
    return lines


def full_report(snapshot: Snapshot, fallbacks: list[Fallback]) -> list[str]:
    lines = [f"source: {snapshot.source}"]
    for fallback in fallbacks:
        lines += textwrap.wrap(f"passed over {fallback.source}: {fallback.reason}", WIDTH, initial_indent="  ", subsequent_indent="    ")
    headroom = snapshot.headroom
    lines.append(f"thermal headroom: {describe(snapshot) if headroom else 'unknown (no sensor with a trip point)'}")
    if snapshot.sensors:
        lines += ["sensors:", *_sensor_lines(snapshot)]
    else:
        lines.append("sensors: none")
    lines.append(f"CPU: {_cpu(snapshot)}")
    lines.append(f"memory: {_memory(snapshot)}")
    lines += [f"GPU {line}" for line in _gpus(snapshot)]
    if snapshot.rails:
        total = "-" if snapshot.power_total_watts is None else f"{snapshot.power_total_watts:.1f} W"
        lines.append(f"power: total {total}")
        lines += [f"  {r.name:<26} {r.watts:>6.1f} W" + ("" if r.limit_watts is None else f" of {r.limit_watts:.0f} W")
                  for r in snapshot.rails]
    for fan in snapshot.fans or ():
        lines.append(f"fan {fan.name}: {'-' if fan.percent is None else f'{fan.percent:.0f}%'}"
                     + ("" if fan.rpm is None else f" {fan.rpm} rpm"))
    if snapshot.power_mode is not None or snapshot.jetson_clocks is not None:
        clocks = {None: "unknown", True: "on", False: "off"}[snapshot.jetson_clocks]
        lines.append(f"power mode: {snapshot.power_mode or 'unknown'}; jetson_clocks: {clocks}")
    if snapshot.throttle is not None:
        lines.append("throttling: " + ("; ".join(snapshot.throttle.reasons) if snapshot.throttle.active else "no"))
    lines += textwrap.wrap("not available here: " + (", ".join(snapshot.absent) or "nothing"), WIDTH, subsequent_indent="  ")
    for note in snapshot.notes:
        lines += textwrap.wrap(f"note: {note}", WIDTH, subsequent_indent="  ")
    return lines


def ticker(snapshot: Snapshot) -> str:
    """One line per sample, within 80 columns."""
    headroom = snapshot.headroom
    parts = [time.strftime("%H:%M:%S", time.localtime(snapshot.time)),
             f"headroom {headroom.celsius:.1f}°C {headroom.sensor[:12]}" if headroom else "headroom -",
             f"cpu {_cpu(snapshot).split('%')[0]}%" if snapshot.cpu_percent else "cpu -",
             f"ram {gib(snapshot.memory.ram_used_bytes)}/{gib(snapshot.memory.ram_total_bytes)}G" if snapshot.memory else "ram -"]
    parts += [f"gpu {g.load_percent:.0f}%" for g in snapshot.gpus or () if g.load_percent is not None]
    if snapshot.power_total_watts is not None:
        parts.append(f"{snapshot.power_total_watts:.1f}W")
    if snapshot.throttle is not None:
        parts.append("THROTTLED" if snapshot.throttle.active else "ok")
    return "  ".join(parts)
