"""One immutable snapshot of the device, whatever source read it.

Units are fixed and part of the JSON schema: temperatures in degrees Celsius, power in watts,
memory in bytes, clocks in MHz, loads in percent. A field a device cannot provide is `None` (listed
in `absent`), never zero: "no GPU power rail" and "the rail reads 0 W" are different facts.
"""

from __future__ import annotations

import dataclasses
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
    name: str
    celsius: float
    trips: tuple[Trip, ...] = ()
    online: bool = True

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
        return None if limit is None or not self.online else round(limit.celsius - self.celsius, 2)


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
        return tuple(f.name for f in dataclasses.fields(self) if getattr(self, f.name) is None)

    @property
    def headroom(self) -> Headroom | None:
        """Minimum headroom over every online sensor with a trip point, or None when none has one."""
        best: Headroom | None = None
        for sensor in self.sensors or ():
            room, limit = sensor.headroom, sensor.limit
            if room is None or limit is None:
                continue
            if best is None or room < best.celsius:
                best = Headroom(room, sensor.name, sensor.celsius, limit.celsius, limit.kind)
        return best

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        headroom = self.headroom
        record["headroom"] = dataclasses.asdict(headroom) if headroom else None
        record["absent"] = list(self.absent)
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Snapshot:
        """Inverse of `to_json` (derived keys are ignored); raises KeyError/TypeError/ValueError on a bad record."""
        return cls(
            time=float(record["time"]), source=str(record["source"]),
            cpu_percent=_tuple(record.get("cpu_percent"), lambda value: _maybe(value, float)),
            memory=_one(record.get("memory"), Memory),
            gpus=_tuple(record.get("gpus"), lambda item: Gpu(**item)),
            sensors=_tuple(record.get("sensors"), _sensor),
            rails=_tuple(record.get("rails"), lambda item: Rail(**item)),
            power_total_watts=_maybe(record.get("power_total_watts"), float),
            fans=_tuple(record.get("fans"), lambda item: Fan(**item)),
            power_mode=_maybe(record.get("power_mode"), str),
            jetson_clocks=_maybe(record.get("jetson_clocks"), bool),
            throttle=_maybe(record.get("throttle"), lambda item: Throttle(bool(item["active"]), tuple(item["reasons"]))),
            notes=tuple(str(note) for note in record.get("notes", ())),
        )


def _maybe(value: Any, convert: Any) -> Any:
    return None if value is None else convert(value)


def _one(value: Any, cls: type) -> Any:
    return None if value is None else cls(**value)


def _tuple(value: Any, convert: Any) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return tuple(convert(item) for item in value)


def _sensor(item: dict[str, Any]) -> Sensor:
    trips = tuple(Trip(str(t["kind"]), float(t["celsius"])) for t in item.get("trips", ()))
    return Sensor(str(item["name"]), float(item["celsius"]), trips, bool(item.get("online", True)))
