"""Any Linux: thermal zones and their trip points from /sys/class/thermal, fans and power rails from
hwmon, the GPU clock and load from devfreq (Jetson's integrated GPU), CPU and memory from psutil,
and the CPU packages' power from RAPL's energy counters (/sys/class/powercap, Intel and AMD).

RAPL counts microjoules; the power is the counter's rise between two samples (wrapping at
max_energy_range_uj), so the first sample has none. Since Linux 5.10 the counters are readable by
root only (CVE-2020-8694): unreadable, the power is absent and a note says how to allow it.

Thermal zones are read directly: psutil.sensors_temperatures() drops them whenever any hwmon sensor
exists, and it has no trip points. A file that fails with an error that will not go away (no such
device, not supported, permission) is remembered and not read again every tick.
"""

from __future__ import annotations

import errno
import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from forge_tui.engine.telemetry.snapshot import Fan, Gpu, Memory, Rail, Sensor, Snapshot, Throttle, Trip

# Under load, a clock below its (power-mode capped) maximum means the device is holding it back.
THROTTLE_MIN_LOAD = 80.0
THROTTLE_CLOCK_RATIO = 0.95
PERMANENT_ERRORS = frozenset({errno.ENODEV, errno.ENXIO, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM,
                              errno.EINVAL, errno.ENODATA, errno.EISDIR})
RAPL_LOCKED = ("RAPL energy counters are readable by root only (since Linux 5.10): CPU power is absent; "
               "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj` allows it until the next boot")
NO_ZONES = ("no thermal zones under /sys/class/thermal (usual in VMs and containers): thermal headroom is "
            "unknown here and the thermal guard cannot act")


def clock_throttle(name: str, load: float | None, mhz: float | None, max_mhz: float | None) -> str | None:
    """A reason when a busy clock runs below its maximum (Jetson's throttle signature), else None."""
    if load is None or mhz is None or not max_mhz or load < THROTTLE_MIN_LOAD:
        return None
    if mhz < THROTTLE_CLOCK_RATIO * max_mhz:
        return f"{name} at {mhz:.0f} MHz, below its {max_mhz:.0f} MHz maximum, at {load:.0f}% load"
    return None


class SysfsReader:
    """Reads the /sys files under `root` (a fake tree in tests)."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self._dead: set[Path] = set()

    def text(self, path: Path) -> str | None:
        """The file's content; None when absent or unreadable. An error that will not go away (the
        sensor is off, unsupported or locked) retires the file; a transient one (EIO, EAGAIN from a
        busy I2C sensor) is retried at the next tick."""
        if path in self._dead:
            return None
        try:
            return path.read_text(encoding="utf-8", errors="replace").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in PERMANENT_ERRORS:
                self._dead.add(path)
            return None

    def number(self, path: Path) -> float | None:
        value = self.text(path)
        try:
            number = float(value) if value else None
        except ValueError:
            self._dead.add(path)
            return None
        return number if number is None or math.isfinite(number) else None

    @property
    def retired(self) -> list[str]:
        return sorted(str(path) for path in self._dead)

    # ----------------------------------------------------------------- thermal
    def thermal_zones(self) -> tuple[Sensor, ...]:
        base = self.root / "sys/class/thermal"
        zones = sorted(base.glob("thermal_zone*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
        sensors = []
        for zone in zones:
            millidegrees = self.number(zone / "temp")
            kind = self.text(zone / "type") or zone.name
            if millidegrees is None:
                continue
            online = millidegrees > -255000  # the kernel's "cannot read" is -256000 or so
            sensors.append(Sensor(kind, round(millidegrees / 1000, 2) if online else None, self.trips(zone), online))
        return tuple(sensors)

    def trips(self, zone: Path) -> tuple[Trip, ...]:
        found = []
        for temp_file in sorted(zone.glob("trip_point_*_temp")):
            kind = self.text(temp_file.with_name(temp_file.name.replace("_temp", "_type")))
            value = self.number(temp_file)
            if kind and value is not None and value > 0:
                found.append(Trip(kind, round(value / 1000, 2)))
        return tuple(found)

    def trips_by_name(self) -> dict[str, tuple[Trip, ...]]:
        """Trip points per zone type, keyed as jtop names its sensors ("cpu-thermal" -> "cpu")."""
        table: dict[str, tuple[Trip, ...]] = {}
        for zone in sorted((self.root / "sys/class/thermal").glob("thermal_zone*")):
            kind = self.text(zone / "type")
            if kind:
                table.setdefault(re.split(r"[-_]", kind)[0], self.trips(zone))
        return table

    # ----------------------------------------------------------------- hwmon
    def _hwmon(self) -> list[Path]:
        return sorted((self.root / "sys/class/hwmon").glob("hwmon*"))

    def fans(self) -> tuple[Fan, ...]:
        found = []
        for hwmon in self._hwmon():
            name = self.text(hwmon / "name") or hwmon.name
            for pwm in sorted(hwmon.glob("pwm[0-9]")):
                value = self.number(pwm)
                rpm = self.number(hwmon / f"fan{pwm.name[3:]}_input")
                if value is not None:
                    found.append(Fan(f"{name}{pwm.name[3:]}", round(value / 255 * 100, 1), None if rpm is None else int(rpm)))
        return tuple(found)

    def rapl_domains(self) -> list[tuple[str, float, float | None]]:
        """Each top-level RAPL domain (a CPU package, or `psys`, the whole platform) as (name,
        microjoules, the counter's range); `intel-rapl:N:M` subdomains are parts of their package."""
        found = []
        for domain in sorted((self.root / "sys/class/powercap").glob("intel-rapl:*")):
            if domain.name.count(":") != 1:
                continue
            energy = self.number(domain / "energy_uj")
            if energy is not None:
                name = self.text(domain / "name") or domain.name
                found.append((name, energy, self.number(domain / "max_energy_range_uj")))
        return found

    def rapl_locked(self) -> bool:
        return any(path.name == "energy_uj" for path in self._dead)

    def rails(self) -> tuple[Rail, ...]:
        """hwmon power meters: power*_input (microwatts) or INA3221-style in*/curr* pairs (mV, mA)."""
        found = []
        for hwmon in self._hwmon():
            for power in sorted(hwmon.glob("power[0-9]*_input")):
                index = power.name[5:].split("_")[0]
                microwatts = self.number(power)
                if microwatts is not None:
                    label = self.text(hwmon / f"power{index}_label") or f"{self.text(hwmon / 'name')} power{index}"
                    found.append(Rail(label, round(microwatts / 1e6, 3)))
            for volts_file in sorted(hwmon.glob("in[0-9]*_input")):
                index = volts_file.name[2:].split("_")[0]
                rail = self.text(hwmon / f"in{index}_label")
                millivolts, milliamps = self.number(volts_file), self.number(hwmon / f"curr{index}_input")
                if rail and millivolts is not None and milliamps is not None:
                    found.append(Rail(rail, round(millivolts * milliamps / 1e6, 3), volts=millivolts / 1000, amps=milliamps / 1000))
        return tuple(found)

    # ----------------------------------------------------------------- devfreq GPU (Jetson iGPU)
    def devfreq_gpus(self) -> tuple[Gpu, ...]:
        """devfreq devices with a `load` file (per mille) are the integrated GPU (nvgpu exposes it)."""
        found = []
        for device in sorted((self.root / "sys/class/devfreq").glob("*")):
            load = self.number(device / "device/load")
            if load is None:
                continue
            current, maximum = self.number(device / "cur_freq"), self.number(device / "max_freq")
            found.append(Gpu(device.name, load_percent=load / 10,
                             clock_mhz=None if current is None else current / 1e6,
                             clock_max_mhz=None if maximum is None else maximum / 1e6))
        return tuple(found)


def power_mode() -> str | None:
    """The Jetson power mode from `nvpmodel -q` (read once per source: it changes only by operator action)."""
    binary = shutil.which("nvpmodel")
    if binary is None:
        return None
    try:
        output = subprocess.run([binary, "-q"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"NV Power Mode:\s*(\S+)", output)
    return found.group(1) if found else None


def host_memory() -> Memory:
    ram, swap = psutil.virtual_memory(), psutil.swap_memory()
    return Memory(ram_total_bytes=int(ram.total), ram_used_bytes=int(ram.total - ram.available),
                  swap_total_bytes=int(swap.total), swap_used_bytes=int(swap.used))


class SysfsSource:
    """Thermal zones, hwmon, devfreq and psutil; the fallback that works on any Linux."""

    name = "sysfs"

    def __init__(self, root: Path = Path("/"), clock: Callable[[], float] = time.monotonic) -> None:
        self.reader = SysfsReader(root)
        self.clock = clock
        self._power_mode = power_mode()
        self._energy: dict[str, tuple[float, float]] = {}   # RAPL domain -> (microjoules, monotonic seconds)
        psutil.cpu_percent(percpu=True)  # prime: the next call reports the load since now

    def rapl(self) -> tuple[tuple[Rail, ...], float | None]:
        """RAPL rails and the total: `psys` where the platform has it (it holds the packages), else
        the packages' sum; None until two readings are in."""
        now, rails = self.clock(), []
        for name, microjoules, wrap in self.reader.rapl_domains():
            before = self._energy.get(name)
            self._energy[name] = (microjoules, now)
            if before is None or now <= before[1]:
                continue
            rise = microjoules - before[0]
            if rise < 0:
                if not wrap:
                    continue
                rise += wrap
            rails.append(Rail(f"RAPL {name}", round(rise / 1e6 / (now - before[1]), 3)))
        platform = [rail.watts for rail in rails if rail.name == "RAPL psys"]
        total = platform[0] if platform else (round(sum(rail.watts for rail in rails), 3) if rails else None)
        return tuple(rails), total

    def host(self) -> dict[str, Any]:
        """The host part of a snapshot, shared with the NVML source."""
        sensors = self.reader.thermal_zones()
        return {"time": time.time(), "cpu_percent": tuple(psutil.cpu_percent(percpu=True)), "memory": host_memory(),
                "sensors": sensors or None, "notes": () if sensors else (NO_ZONES,)}

    def sample(self) -> Snapshot:
        host = self.host()
        gpus = self.reader.devfreq_gpus()
        rails, fans = self.reader.rails(), self.reader.fans()
        rapl, total = self.rapl()
        reasons = [r for r in (clock_throttle(g.name, g.load_percent, g.clock_mhz, g.clock_max_mhz) for g in gpus) if r]
        notes = host.pop("notes")
        if self.reader.rapl_locked():
            notes += (RAPL_LOCKED,)
        if self.reader.retired:
            notes += (f"skipped (unreadable): {', '.join(self.reader.retired)}",)
        if not gpus:
            notes += ("no GPU seen through devfreq or NVML: GPU load and clocks are absent",)
        return Snapshot(
            source=self.name, **host, gpus=gpus or None, rails=(rails + rapl) or None,
            power_total_watts=total, fans=fans or None, power_mode=self._power_mode,
            throttle=Throttle(bool(reasons), tuple(reasons)) if gpus else None, notes=notes)

    def close(self) -> None:
        return None

