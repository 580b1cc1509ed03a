"""The runner's view of telemetry: opened at setup, sampled by one background thread that also
writes the run's thermal and energy record, asked between optimizer steps whether the device is too
hot to go on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_tui.config import Config
from forge_tui.engine.telemetry import Sampler, open_source
from forge_tui.engine.telemetry.guard import Decision, GuardSettings, ThermalGuard
from forge_tui.engine.telemetry.record import RunRecorder
from forge_tui.engine.telemetry.snapshot import Snapshot


def guard_settings(config: Config) -> GuardSettings:
    thermal = config.thermal
    return GuardSettings(thermal.pause_below, thermal.resume_above, thermal.max_pause_minutes * 60)


class ThermalWatch:
    """Opens the configured source (an explicitly named one that cannot open is an error), reads a
    first snapshot for the run's record, and runs the sampler for as long as the source reads: it
    feeds the recorder (`record_to`, the run's telemetry.jsonl) and, where a sensor has a trip
    point, the guard. What the operator should know (a failed reading, a guard that cannot act,
    readings lost and back) goes to the `warn` callback given to `attach`; until then it waits in
    `warnings`."""

    def __init__(self, config: Config, record_to: Path | None = None) -> None:
        telemetry = config.telemetry
        opened = open_source(telemetry.source, interval=telemetry.interval, speed=telemetry.replay_speed)
        self.source_name = opened.source.name
        self.interval = telemetry.interval
        self.warnings: list[str] = []
        self.warn: Callable[[str], None] = self.warnings.append
        self._lost = False
        self._record_lost = False
        self.guard = ThermalGuard(guard_settings(config)) if config.thermal.guard else None
        try:
            self.first: Snapshot | None = opened.source.sample()
        except Exception as exc:  # noqa: BLE001 - a sensor failing must not stop training
            self.first = None
            self.warnings.append(f"telemetry ({self.source_name}) failed its first reading: {type(exc).__name__}: {exc}")
        if self.guard is not None and self.first is not None and self.first.headroom is None:
            why = "; ".join(self.first.notes) if self.first.notes else "no sensor reports a trip point"
            self.warnings.append(f"thermal guard inactive: no thermal headroom from {self.source_name} ({why})")
            self.guard = None
        self.sampler: Sampler | None = None
        self.recorder: RunRecorder | None = None
        if self.first is None:
            self.guard = None
            opened.source.close()
            return
        if record_to is not None:
            self.recorder = RunRecorder(record_to, self.source_name)
            self.recorder.add(self.first)
        self.sampler = Sampler(opened.source, telemetry.interval, self.recorder.add if self.recorder else None).start()

    def start_record(self) -> dict[str, Any]:
        """What RunStarted records about the device: the source, the power mode, jetson_clocks, headroom."""
        first = self.first
        headroom = first.headroom if first else None
        return {"telemetry_source": self.source_name,
                "power_mode": first.power_mode if first else None,
                "jetson_clocks": first.jetson_clocks if first else None,
                "thermal_headroom_c": headroom.celsius if headroom else None,
                "thermal_guard": self.guard is not None}

    def attach(self, warn: Callable[[str], None]) -> None:
        """Send warnings to `warn` from now on, the ones gathered so far first."""
        for message in self.warnings:
            warn(message)
        self.warnings.clear()
        self.warn = warn

    def _reading(self, snapshot: Snapshot | None) -> Snapshot | None:
        """Pass a fresh snapshot through, saying once when readings stop and once when they return."""
        if (snapshot is None) != self._lost:
            self._lost = snapshot is None
            error = self.sampler.error if self.sampler else None
            if self._lost:
                self.warn(f"telemetry ({self.source_name}) stopped answering ({error or 'no reading'}): the thermal "
                          "guard holds its state until readings return (a paused run stays paused; `forge-tui stop` ends it)")
            else:
                self.warn(f"telemetry ({self.source_name}) answering again")
        return snapshot

    def check(self) -> Decision:
        if self.sampler is not None and self.sampler.listener_error and not self._record_lost:
            self._record_lost = True  # said once: the sampler has dropped the recorder
            self.warn(f"the run's telemetry record stopped: {self.sampler.listener_error} (training goes on)")
        if self.sampler is None or self.guard is None:
            return Decision("run")
        return self.guard.decide(self._reading(self.sampler.fresh()))

    def wait_until_cool(self, stop_requested: Callable[[], bool]) -> Decision:
        """Block while paused; returns resume, stop (the pause cap) or `operator` (a stop request)."""
        assert self.sampler is not None
        assert self.guard is not None
        while True:
            decision = self.guard.decide(self._reading(self.sampler.wait(self.interval * 2)))
            if decision.action != "wait":
                return decision
            if stop_requested():
                waited = self.guard.clock() - (self.guard.paused_since or self.guard.clock())
                return Decision("operator", details={**decision.details, "paused_seconds": round(waited, 1)})

    def close(self) -> None:
        """Stop sampling and close the record; never raises (the run's outcome is already told)."""
        stopped = self.sampler.stop() if self.sampler is not None else True
        self.sampler = None
        if self.recorder is not None and stopped:  # a read still hanging may yet hand it a snapshot
            self.recorder.close()
        self.recorder = None
