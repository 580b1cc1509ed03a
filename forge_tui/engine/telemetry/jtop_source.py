"""Jetson: the jetson-stats client talking to the jtop service over its unix socket.

jtop gives CPU, memory (with the GPU's share of the unified memory), the iGPU, every thermal sensor,
the INA3221 power rails, fans, nvpmodel and jetson_clocks. Its thermal zones carry no trip points, so
they are read from /sys/class/thermal and matched by name, as jtop names them ("cpu-thermal" -> "cpu").
Units in: °C, mW, mV, mA, KB, kHz; out: the snapshot's °C, W, V, A, bytes, MHz.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from forge_tui.engine.memory import is_jetson
from forge_tui.engine.telemetry.snapshot import Fan, Gpu, Memory, Rail, Sensor, Snapshot, Throttle, Trip
from forge_tui.engine.telemetry.sysfs import SysfsReader, clock_throttle

SOCKET_ENV = "FORGE_TUI_JTOP_SOCKET"
OFFLINE = -256


class JtopUnavailable(Exception):
    """The jtop service cannot be used; the message says why and what to do."""


def default_socket() -> str:
    from jtop.service import JTOP_PIPE

    return os.environ.get(SOCKET_ENV) or JTOP_PIPE


def explain(message: str, socket: str) -> str:
    """jetson-stats' exception text -> what the operator should do about it."""
    if "not active" in message:
        where = "" if is_jetson() else " (this is not a Jetson, so none is expected)"
        return f"the jtop service is not running: nothing answers on {socket}{where}; on a Jetson run `sudo jtop --install-service`"
    if "can't access" in message or "Permission" in message:
        return (f"permission denied on {socket}: add your user to the jtop group (`sudo usermod -aG jtop $USER`), "
                "then log out and back in")
    versions = re.search(r"service: \[(.*?)\] and client: \[(.*?)\]", message)
    if versions:
        service, client = versions.groups()
        return (f"jtop service {service} and client {client} differ: install jetson-stats=={service} in Forge's "
                "environment, or upgrade both (`sudo pip3 install -U jetson-stats`, then `sudo systemctl restart jtop.service`)")
    if "Authentication" in message:
        return f"the service on {socket} refused this jtop client (authentication failed: a different jetson-stats?)"
    return f"jtop: {message.splitlines()[0] if message else 'failed'}"


def connect(interval: float, socket: str | None = None) -> Any:
    """A started jtop client, or JtopUnavailable with the reason."""
    import jtop.service
    from jtop import JtopException
    from jtop import jtop as JtopClient

    path = socket or default_socket()
    jtop.service.JTOP_PIPE = path  # the client's manager connects to this module-level address
    client = JtopClient(interval=interval)
    try:
        client.start()
    except JtopException as exc:
        reason = explain(str(exc), path)
    except Exception as exc:  # noqa: BLE001 - a half-working service: say what happened, fall back
        reason = f"the jtop service on {path} did not answer properly ({type(exc).__name__}: {exc})"
    else:
        return client
    client.close()
    raise JtopUnavailable(reason)


def _trips(name: str, values: dict[str, Any], sysfs: dict[str, tuple[Trip, ...]]) -> tuple[Trip, ...]:
    if sysfs.get(name):
        return sysfs[name]
    pairs = (("hot", values.get("max")), ("critical", values.get("crit")))
    return tuple(Trip(kind, float(value)) for kind, value in pairs if isinstance(value, (int, float)) and value > 0)


def sensors(temperature: dict[str, Any], sysfs: dict[str, tuple[Trip, ...]]) -> tuple[Sensor, ...]:
    found = []
    for name, values in temperature.items():
        celsius = float(values.get("temp", OFFLINE))
        online = bool(values.get("online", True)) and celsius > OFFLINE
        found.append(Sensor(name, celsius if online else None, _trips(name, values, sysfs), online))
    return tuple(found)


def rails(power: dict[str, Any]) -> tuple[tuple[Rail, ...], float | None]:
    found = tuple(
        Rail(name, rail["power"] / 1000, average_watts=_scaled(rail.get("avg"), 1000),
             volts=_scaled(rail.get("volt"), 1000), amps=_scaled(rail.get("curr"), 1000))
        for name, rail in power.get("rail", {}).items() if rail.get("online", True) and "power" in rail)
    total = power.get("tot", {}).get("power")
    return found, _scaled(total, 1000)


def memory(mem: dict[str, Any]) -> Memory:
    ram, swap = mem["RAM"], mem.get("SWAP", {})
    return Memory(ram_total_bytes=int(ram["tot"]) * 1024, ram_used_bytes=int(ram["used"]) * 1024,
                  swap_total_bytes=_scaled(swap.get("tot"), 1 / 1024, int), swap_used_bytes=_scaled(swap.get("used"), 1 / 1024, int),
                  gpu_shared_bytes=_scaled(ram.get("shared"), 1 / 1024, int))


def gpus(gpu: Any) -> tuple[Gpu, ...]:
    found = []
    for name, values in gpu.items():
        freq = values.get("freq", {})
        found.append(Gpu(name, load_percent=_scaled(values.get("status", {}).get("load"), 1),
                         clock_mhz=_scaled(freq.get("cur"), 1000), clock_max_mhz=_scaled(freq.get("max"), 1000)))
    return tuple(found)


def cpu_loads(cpu: dict[str, Any]) -> tuple[tuple[float | None, ...], list[str]]:
    """Per-core load (None for an offline core) and the cores held below their maximum clock under load."""
    loads: list[float | None] = []
    reasons = []
    for index, core in enumerate(cpu.get("cpu", [])):
        if not core.get("online", True) or "idle" not in core:
            loads.append(None)
            continue
        load = round(100.0 - float(core["idle"]), 1)
        loads.append(load)
        freq = core.get("freq", {})
        reason = clock_throttle(f"cpu{index}", load, _scaled(freq.get("cur"), 1000), _scaled(freq.get("max"), 1000))
        if reason:
            reasons.append(reason)
    return tuple(loads), reasons


def fans(fan: Any) -> tuple[Fan, ...]:
    found = []
    for name, values in fan.items():
        rpms = values.get("rpm", [])
        for index, speed in enumerate(values.get("speed", [])):
            rpm = rpms[index] if index < len(rpms) else None
            found.append(Fan(name if len(values["speed"]) == 1 else f"{name}{index}", float(speed), rpm))
    return tuple(found)


def _scaled(value: Any, divisor: float, kind: type = float) -> Any:
    return None if not isinstance(value, (int, float)) else kind(value / divisor)


class JtopSource:
    name = "jtop"

    def __init__(self, interval: float = 1.0, socket: str | None = None, sysfs_root: Path = Path("/")) -> None:
        self.client = connect(interval, socket)
        self.trip_table = SysfsReader(sysfs_root).trips_by_name()  # trip points do not change while running

    def sample(self) -> Snapshot:
        client = self.client
        client.ok(spin=True)  # raises the client thread's error if the service went away
        loads, reasons = cpu_loads(client.cpu)
        gpu_list = gpus(client.gpu)
        reasons += [r for r in (clock_throttle(g.name, g.load_percent, g.clock_mhz, g.clock_max_mhz) for g in gpu_list) if r]
        rail_list, total = rails(client.power)
        nvpmodel, clocks = client.nvpmodel, client.jetson_clocks
        readings = sensors(client.temperature, self.trip_table)
        notes = () if any(s.limit for s in readings) else (
            "no trip points: jtop reports none and /sys/class/thermal has none for these sensors, so headroom is unknown",)
        return Snapshot(
            time=time.time(), source=self.name, cpu_percent=loads, memory=memory(dict(client.memory.items())),
            gpus=gpu_list or None, sensors=readings or None,
            rails=rail_list or None, power_total_watts=total, fans=fans(client.fan) or None,
            power_mode=None if nvpmodel is None else str(nvpmodel.name),
            jetson_clocks=None if clocks is None else bool(clocks),
            throttle=Throttle(bool(reasons), tuple(reasons)), notes=notes)

    def close(self) -> None:
        self.client.close()
