"""A run's thermal and energy record: the telemetry the runner saw, kept in the run directory.

The runner's sampler hands every snapshot to a `RunRecorder`, which writes one row per window
(`WINDOW_SECONDS`) to RUN_DIR/telemetry.jsonl: the lowest headroom and its sensor, each sensor's
peak, the peak power and the joules of the window (the power integrated over every sample, by
the trapezoid rule, so downsampling loses no energy), the seconds throttled, the peak load. A row
is ~0.4 KB: a 10-hour run writes ~3 MB. A resumed run appends a new header and goes on.

`run_record` reads it back with the run's events into the figures a technician asks for: peaks,
lowest headroom, time paused by the guard and throttled, average and peak power, Wh and joules per
trained token. What the device cannot measure is None (absent), never 0: a run on a machine with
no power meter has no energy, not zero energy.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from forge_tui.engine.telemetry.snapshot import Snapshot
from forge_tui.units import duration, figure

FORMAT, VERSION = "forge-run-telemetry", 1
FILE = "telemetry.jsonl"
WINDOW_SECONDS = 5.0
# Two readings further apart than this are not joined: the sampler stalled, or the wall clock was
# stepped (a Jetson without a battery-backed clock meets NTP mid-run); that stretch is left unmetered.
MAX_GAP_SECONDS = 60.0
# What `power_total_watts` measures, by source: energy figures are only as whole as their meter.
METERS = {"jtop": "Jetson INA3221 rails, via jtop (the module's input)",
          "nvml": "NVML board power (the GPUs only)",
          "sysfs": "RAPL energy counters (the CPU packages only)",
          "replay": "a replayed recording's power"}


def _larger(old: float | None, new: float | None) -> float | None:
    return new if old is None or (new is not None and new > old) else old


@dataclass
class Window:
    """One row: what happened between `start` and `end` (the previous row's last sample and this
    row's last one, so rows tile the run with no gap)."""

    start: float
    end: float
    samples: int = 0
    joules: float | None = None
    metered_s: float = 0.0
    watts_max: float | None = None
    throttled_s: float | None = None
    headroom: tuple[float, str] | None = None
    peaks: dict[str, float] = field(default_factory=dict)
    load_max: float | None = None

    def take(self, snapshot: Snapshot, previous: Snapshot | None) -> None:
        self.samples += 1
        self.end = snapshot.time
        for sensor in snapshot.sensors or ():
            if sensor.celsius is not None:
                self.peaks[sensor.name] = max(sensor.celsius, self.peaks.get(sensor.name, sensor.celsius))
        room = snapshot.headroom
        if room is not None and (self.headroom is None or room.celsius < self.headroom[0]):
            self.headroom = (room.celsius, room.sensor)
        self.watts_max = _larger(self.watts_max, snapshot.power_total_watts)
        load = snapshot.load
        self.load_max = _larger(self.load_max, load[1] if load else None)
        if previous is not None:
            self._interval(previous, snapshot)

    def _interval(self, previous: Snapshot, snapshot: Snapshot) -> None:
        seconds = snapshot.time - previous.time
        if not 0 < seconds <= MAX_GAP_SECONDS:
            return
        before, now = previous.power_total_watts, snapshot.power_total_watts
        if before is not None and now is not None:
            self.joules = (self.joules or 0.0) + (before + now) / 2 * seconds
            self.metered_s += seconds
        if previous.throttle is not None:  # held from one reading to the next
            self.throttled_s = (self.throttled_s or 0.0) + (seconds if previous.throttle.active else 0.0)

    def to_json(self) -> dict[str, Any]:
        room = self.headroom
        return {"t0": self.start, "t1": self.end, "samples": self.samples,
                "joules": None if self.joules is None else round(self.joules, 3), "metered_s": round(self.metered_s, 3),
                "watts_max": self.watts_max, "throttled_s": None if self.throttled_s is None else round(self.throttled_s, 3),
                "headroom_min_c": room[0] if room else None, "headroom_sensor": room[1] if room else None,
                "peak_c": self.peaks, "load_max_percent": self.load_max}


class RunRecorder:
    """Writes a run's telemetry rows as snapshots arrive (from the sampler's thread)."""

    def __init__(self, path: Path, source: str, window: float = WINDOW_SECONDS) -> None:
        self.window_s = window
        self.handle: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run
        self._write({"record": FORMAT, "version": VERSION, "source": source, "meter": METERS.get(source),
                     "window_s": window, "started": time.time()})
        self.previous: Snapshot | None = None
        self.window: Window | None = None

    def _write(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()

    def add(self, snapshot: Snapshot) -> None:
        previous = self.previous
        if previous is not None and snapshot.time == previous.time:
            return  # the same reading again
        if previous is not None and snapshot.time < previous.time:
            previous = None  # the clock was stepped back: start again from this reading
        if self.window is None:
            self.window = Window(snapshot.time, snapshot.time)
        elif previous is not None and snapshot.time - self.window.start >= self.window_s:
            self._write(self.window.to_json())
            self.window = Window(previous.time, previous.time)
        self.window.take(snapshot, previous)
        self.previous = snapshot

    def close(self) -> None:
        """Write the last window; a disk that fails now costs the record's tail, never the run."""
        try:
            if self.window is not None and self.window.samples:
                self._write(self.window.to_json())
        except OSError:
            pass
        finally:
            self.window = None
            self.handle.close()


# ------------------------------------------------------------------------------------- reading back
@dataclass(frozen=True)
class RunRecord:
    """A run's time, energy and thermal story. None: not measured here (no meter, no sensor)."""

    seconds: float | None                 # the runner's wall time, every resume included
    tokens: int                           # tokens trained (a step redone after a crash counts twice: it cost twice)
    paused_s: float                       # paused by the thermal guard
    rows: int = 0
    meter: str | None = None
    energy_j: float | None = None
    metered_s: float = 0.0
    watts_max: float | None = None
    throttled_s: float | None = None
    headroom_min_c: float | None = None
    headroom_sensor: str | None = None
    peaks_c: dict[str, float] = field(default_factory=dict)

    @property
    def energy_wh(self) -> float | None:
        return None if self.energy_j is None else self.energy_j / 3600

    @property
    def watts_mean(self) -> float | None:
        return None if self.energy_j is None or not self.metered_s else self.energy_j / self.metered_s

    @property
    def joules_per_token(self) -> float | None:
        return None if self.energy_j is None or not self.tokens else self.energy_j / self.tokens

    def to_json(self) -> dict[str, Any]:
        """The fields, and the figures derived from them (ignored by `from_json`)."""
        return {**asdict(self), "energy_wh": self.energy_wh, "joules_per_token": self.joules_per_token,
                "watts_mean": self.watts_mean}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RunRecord:
        return cls(**{key: value for key, value in record.items() if key in cls.__dataclass_fields__})


def read_rows(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of a run's telemetry file and its meter; a torn or damaged line (power loss) is
    skipped: this record informs, it never stops a run from being listed."""
    rows, meter = [], None
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return [], None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("record") == FORMAT:
            meter = record.get("meter") or meter
        elif "t0" in record:
            rows.append(record)
    return rows, meter


def _sum(values: list[Any]) -> float | None:
    present = [float(v) for v in values if isinstance(v, (int, float))]
    return sum(present) if present else None


def _max(values: list[Any]) -> float | None:
    present = [float(v) for v in values if isinstance(v, (int, float))]
    return max(present) if present else None


def _thermal(rows: list[dict[str, Any]]) -> dict[str, Any]:
    peaks: dict[str, float] = {}
    for row in rows:
        for name, celsius in (row.get("peak_c") or {}).items():
            peaks[name] = max(float(celsius), peaks.get(name, float(celsius)))
    rooms = [(row["headroom_min_c"], row.get("headroom_sensor")) for row in rows if isinstance(row.get("headroom_min_c"), (int, float))]
    lowest = min(rooms, key=lambda pair: pair[0]) if rooms else (None, None)
    return {"peaks_c": peaks, "headroom_min_c": lowest[0], "headroom_sensor": lowest[1]}


RUNNER_ENDS = ("finished", "stopped", "error")


def runner_seconds(events: list[dict[str, Any]]) -> float | None:
    """Wall time of the runners' work: from each runner's start (run_started less its setup) to its
    end (finished, stopped, error) or its last event (a runner killed without a last word). What
    happens between runners (a resume's own warnings, a benchmark) is not run time."""
    total, start, last, seen = 0.0, None, 0.0, False
    for event in events:
        kind, when = event.get("type", ""), float(event.get("time", 0.0))
        if kind == "run_started":
            if start is not None:
                total += min(last, when) - start   # the previous runner died without a last word
            seen, last = True, when
            start = when - float(event.get("setup_seconds") or 0.0)
        elif start is not None and not kind.startswith("bench"):
            last = when
            if kind in RUNNER_ENDS:
                total, start = total + last - start, None
    if not seen:
        return None
    return round(total + (last - start if start is not None else 0.0), 1)


def paused_seconds(events: list[dict[str, Any]]) -> float:
    """Seconds the thermal guard held the run: each pause's length, told when it ended."""
    return round(sum(float(e.get("details", {}).get("paused_seconds", 0.0)) for e in events
                     if e.get("type") in ("resumed", "stopped")), 1)


def run_record(run_path: Path, events: list[dict[str, Any]]) -> RunRecord:
    rows, meter = read_rows(run_path / FILE)
    tokens = sum(int(e.get("tokens", 0)) for e in events if e.get("type") == "step")
    return RunRecord(seconds=runner_seconds(events), tokens=tokens, paused_s=paused_seconds(events), rows=len(rows),
                     meter=meter, energy_j=_sum([r.get("joules") for r in rows]),
                     metered_s=sum(float(r.get("metered_s") or 0) for r in rows), watts_max=_max([r.get("watts_max") for r in rows]),
                     throttled_s=_sum([r.get("throttled_s") for r in rows]), **_thermal(rows))


def describe(record: RunRecord) -> list[str]:
    """The record in lines of at most ~76 characters (the Monitor, `runs`, the benchmark report)."""
    time_line = "time " + ("-" if record.seconds is None else duration(record.seconds))
    if record.paused_s:
        time_line += f", {duration(record.paused_s)} of it paused by the thermal guard"
    if record.energy_j is None:
        energy = "energy not measured here (no power meter the telemetry can read)"
    else:
        per_token = "-" if record.joules_per_token is None else f"{record.joules_per_token:.2f}"
        energy = (f"energy {record.energy_wh or 0.0:.2f} Wh, {per_token} J/token, "
                  f"{figure(record.watts_mean)} W mean, {figure(record.watts_max)} W peak")
    room = ("lowest headroom unknown (no sensor with a trip point)" if record.headroom_min_c is None
            else f"lowest headroom {record.headroom_min_c:.1f} °C ({record.headroom_sensor})")
    throttled = "throttling not reported" if record.throttled_s is None else f"throttled {duration(record.throttled_s)}"
    lines = [time_line, energy, f"{room}, {throttled}"]
    if record.peaks_c:
        hottest = sorted(record.peaks_c.items(), key=lambda pair: -pair[1])[:4]
        lines.append("peaks " + ", ".join(f"{name} {celsius:.1f}" for name, celsius in hottest) + " °C")
    return lines
