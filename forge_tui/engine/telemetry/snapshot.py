"""One immutable snapshot of the device, whatever source read it.

Units are fixed and part of the JSON schema: temperatures in degrees Celsius, power in watts,
memory in bytes, clocks in MHz, loads in percent. A field a device cannot provide is `None` (listed
in `absent`), never zero: "no GPU power rail" and "the rail reads 0 W" are different facts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Trip points the kernel (or the GPU firmware) throttles at; the headroom is measured to these.
THROTTLE_TRIPS = frozenset({"passive", "hot", "slowdown"})
# Trip points where the device shuts down: a sensor's limit only when it has no throttle trip.
SHUTDOWN_TRIPS = frozenset({"critical", "shutdown"})


@dataclass(frozen=True)
class Trip:
    kind: str        # passive | hot | critical | active (sysfs), slowdown | shutdown (NVML)
    celsius: float


@dataclass(frozen=True)
class Sensor:
    """A temperature; `celsius` is None for a sensor the device cannot read (jtop and the kernel say
    -256 °C for one: that number is never passed on), and such a sensor is offline."""

    name: str
    celsius: float | None
    trips: tuple[Trip, ...] = ()
    online: bool = True

    def __post_init__(self) -> None:
        if self.celsius is None or not self.online:
            object.__setattr__(self, "celsius", None)
            object.__setattr__(self, "online", False)

    @property
    def limit(self) -> Trip | None:
        """The nearest throttle trip point, else the shutdown one; active (fan) trips are not limits."""
        for kinds in (THROTTLE_TRIPS, SHUTDOWN_TRIPS):
            candidates = [trip for trip in self.trips if trip.kind in kinds]
            if candidates:
                return min(candidates, key=lambda trip: trip.celsius)
        return None

    @property
    def headroom(self) -> float | None:
        limit = self.limit
        return None if limit is None or self.celsius is None else round(limit.celsius - self.celsius, 2)


@dataclass(frozen=True)
class Headroom:
    """The headline: the sensor closest to its limit."""

    celsius: float
    sensor: str
    temperature: float
    limit: float
    limit_kind: str


@dataclass(frozen=True)
class Memory:
    ram_total_bytes: int
    ram_used_bytes: int
    swap_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    gpu_shared_bytes: int | None = None   # Jetson: RAM the GPU holds (CPU and GPU share one memory)


@dataclass(frozen=True)
class Gpu:
    name: str
    load_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    clock_mhz: float | None = None
    clock_max_mhz: float | None = None


@dataclass(frozen=True)
class Rail:
    name: str
    watts: float
    average_watts: float | None = None
    volts: float | None = None
    amps: float | None = None
    limit_watts: float | None = None


@dataclass(frozen=True)
class Fan:
    name: str
    percent: float | None = None
    rpm: int | None = None


@dataclass(frozen=True)
class Throttle:
    active: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    time: float                                  # Unix seconds
    source: str                                  # jtop | nvml | sysfs | replay
    cpu_percent: tuple[float | None, ...] | None = None  # per core; None for an offline core
    memory: Memory | None = None
    gpus: tuple[Gpu, ...] | None = None
    sensors: tuple[Sensor, ...] | None = None
    rails: tuple[Rail, ...] | None = None
    power_total_watts: float | None = None
    fans: tuple[Fan, ...] | None = None
    power_mode: str | None = None                # Jetson nvpmodel, e.g. "MAXN"
    jetson_clocks: bool | None = None
    throttle: Throttle | None = None
    notes: tuple[str, ...] = ()                  # why fields are absent, in words an operator can act on

    @property
    def absent(self) -> tuple[str, ...]:
        """Fields the device could not give, and `sensors.NAME.celsius` for each offline sensor."""
        missing = tuple(f.name for f in dataclasses.fields(self) if getattr(self, f.name) is None)
        return missing + tuple(f"sensors.{s.name}.celsius" for s in self.sensors or () if s.celsius is None)

    @property
    def load(self) -> tuple[str, float] | None:
        """The load worth graphing, with its label: the busiest GPU's, else the CPU cores' mean."""
        gpus = [g.load_percent for g in self.gpus or () if g.load_percent is not None]
        if gpus:
            return "GPU %", max(gpus)
        cores = [c for c in self.cpu_percent or () if c is not None]
        return ("CPU %", sum(cores) / len(cores)) if cores else None

    @property
    def headroom(self) -> Headroom | None:
        """Minimum headroom over every online sensor with a trip point, or None when none has one."""
        best: Headroom | None = None
        for sensor in self.sensors or ():
            room, limit, celsius = sensor.headroom, sensor.limit, sensor.celsius
            if room is None or limit is None or celsius is None or not math.isfinite(room):
                continue
            if best is None or room < best.celsius:
                best = Headroom(room, sensor.name, celsius, limit.celsius, limit.kind)
        return best

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        headroom = self.headroom
        record["headroom"] = dataclasses.asdict(headroom) if headroom else None
        record["absent"] = list(self.absent)
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Snapshot:
        """Inverse of `to_json` (derived keys are ignored); ValueError naming the field on a bad record."""
        if not isinstance(record, dict):
            raise ValueError("a snapshot must be a JSON object")
        return cls(
            time=_number(record.get("time"), "time"), source=_text(record.get("source"), "source"),
            cpu_percent=_items(record, "cpu_percent", lambda v, at: _maybe(v, at, _number)),
            memory=_maybe(record.get("memory"), "memory", lambda v, at: _build(Memory, v, at)),
            gpus=_items(record, "gpus", lambda v, at: _build(Gpu, v, at)),
            sensors=_items(record, "sensors", _sensor),
            rails=_items(record, "rails", lambda v, at: _build(Rail, v, at)),
            power_total_watts=_maybe(record.get("power_total_watts"), "power_total_watts", _number),
            fans=_items(record, "fans", lambda v, at: _build(Fan, v, at)),
            power_mode=_maybe(record.get("power_mode"), "power_mode", _text),
            jetson_clocks=_maybe(record.get("jetson_clocks"), "jetson_clocks", _flag),
            throttle=_maybe(record.get("throttle"), "throttle", _throttle),
            notes=tuple(_text(n, "notes") for n in _list(record.get("notes", []), "notes")),
        )


# --------------------------------------------------------------------------- strict reading of recordings
# A recording is input: every value is checked for its type (numbers finite, flags real booleans),
# so a bad file is refused with the field named instead of misleading the guard later.


def _number(value: Any, at: str) -> float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        raise ValueError(f"{at}: expected a finite number, got {str(value)[:40]}")
    return float(value)


def _text(value: Any, at: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{at}: expected a string, got {value!r}")
    return value


def _flag(value: Any, at: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{at}: expected true or false, got {value!r}")
    return value


def _list(value: Any, at: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{at}: expected a list, got {value!r}")
    return value


def _maybe(value: Any, at: str, convert: Callable[[Any, str], Any]) -> Any:
    return None if value is None else convert(value, at)


def _items(record: dict[str, Any], key: str, convert: Callable[[Any, str], Any]) -> tuple[Any, ...] | None:
    value = record.get(key)
    if value is None:
        return None
    return tuple(convert(item, f"{key}[{index}]") for index, item in enumerate(_list(value, key)))


# Field name -> checker, for the flat record types.
_CHECKS: dict[str, Callable[[Any, str], Any]] = {"name": _text, "rpm": _number}


def _build(cls: type, value: Any, at: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{at}: expected an object, got {value!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
    checked = {key: _maybe(item, f"{at}.{key}", _CHECKS.get(key, _number)) for key, item in value.items()}
    try:
        return cls(**checked)
    except TypeError as exc:
        raise ValueError(f"{at}: {exc}") from None


def _sensor(value: Any, at: str) -> Sensor:
    if not isinstance(value, dict):
        raise ValueError(f"{at}: expected an object, got {value!r}")
    trips = tuple(Trip(_text(_field(t, "kind", at), f"{at}.trips.kind"), _number(_field(t, "celsius", at), f"{at}.trips.celsius"))
                  for t in _list(value.get("trips", []), f"{at}.trips"))
    online = _flag(value.get("online", True), f"{at}.online")
    # An offline sensor's reading is dropped unread: recordings made before it was null hold -256.
    celsius = _maybe(value.get("celsius"), f"{at}.celsius", _number) if online else None
    return Sensor(_text(value.get("name"), f"{at}.name"), celsius, trips, online)


def _field(value: Any, key: str, at: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{at}.trips: expected objects, got {value!r}")
    return value.get(key)


def _throttle(value: Any, at: str) -> Throttle:
    if not isinstance(value, dict):
        raise ValueError(f"{at}: expected an object, got {value!r}")
    reasons = tuple(_text(r, f"{at}.reasons") for r in _list(value.get("reasons", []), f"{at}.reasons"))
    return Throttle(_flag(value.get("active"), f"{at}.active"), reasons)
