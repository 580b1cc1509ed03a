"""The thermal guard: pause a run when the device runs out of thermal headroom, resume when it has
cooled, with hysteresis (resume_above > pause_below) so it does not flap, and an optional cap on
how long a pause may last before the run stops cleanly.

The state machine is pure (snapshots in, decisions out) so replayed traces test it exactly; the
runner owns the checkpoint, the events and the waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forge_tui.engine.telemetry.snapshot import Snapshot


@dataclass(frozen=True)
class GuardSettings:
    pause_below: float            # °C of headroom
    resume_above: float           # °C of headroom, above pause_below
    max_pause_seconds: float = 0  # 0: wait as long as it takes


@dataclass(frozen=True)
class Decision:
    action: str                   # run | pause | wait | resume | stop
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def thermal_details(snapshot: Snapshot | None, settings: GuardSettings) -> dict[str, Any]:
    """What an event records about the heat that caused it: the headline and every temperature."""
    details: dict[str, Any] = {"pause_below_c": settings.pause_below, "resume_above_c": settings.resume_above}
    if snapshot is None:
        return details
    headroom = snapshot.headroom
    if headroom is not None:
        details.update(headroom_c=headroom.celsius, sensor=headroom.sensor, temperature_c=headroom.temperature,
                       limit_c=headroom.limit, limit_kind=headroom.limit_kind)
    details["temperatures_c"] = {s.name: s.celsius for s in snapshot.sensors or () if s.celsius is not None}
    if snapshot.throttle is not None and snapshot.throttle.reasons:
        details["throttle"] = list(snapshot.throttle.reasons)
    return details


def describe(snapshot: Snapshot | None) -> str:
    headroom = snapshot.headroom if snapshot else None
    if headroom is None:
        return "no thermal reading"
    return (f"{headroom.celsius:.1f} °C headroom on {headroom.sensor} "
            f"({headroom.temperature:.1f} °C, {headroom.limit_kind} trip at {headroom.limit:.1f} °C)")


class ThermalGuard:
    def __init__(self, settings: GuardSettings, clock: Callable[[], float] = time.monotonic) -> None:
        if settings.resume_above <= settings.pause_below:
            raise ValueError("resume_above must be above pause_below")
        self.settings, self.clock = settings, clock
        self.paused_since: float | None = None

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    def decide(self, snapshot: Snapshot | None) -> Decision:
        """run/pause while running; wait/resume/stop while paused. No reading keeps the current state."""
        s = self.settings
        headroom = snapshot.headroom if snapshot else None
        details = thermal_details(snapshot, s)
        if not self.paused:
            if headroom is not None and headroom.celsius < s.pause_below:
                self.paused_since = self.clock()
                return Decision("pause", f"{describe(snapshot)} is below {s.pause_below:g} °C; "
                                         f"resumes above {s.resume_above:g} °C", details)
            return Decision("run", details=details)
        if headroom is not None and headroom.celsius >= s.resume_above:
            waited = self.clock() - (self.paused_since or 0)
            self.paused_since = None
            return Decision("resume", f"{describe(snapshot)} after {waited:.0f} s", {**details, "paused_seconds": round(waited, 1)})
        waited = self.clock() - (self.paused_since or 0)
        if s.max_pause_seconds and waited >= s.max_pause_seconds:
            self.paused_since = None
            return Decision("stop", f"still hot after {waited:.0f} s paused (cap {s.max_pause_seconds:g} s)",
                            {**details, "paused_seconds": round(waited, 1)})
        return Decision("wait", details=details)
