"""An emulated jtop service speaking jetson-stats' own protocol on a real unix socket.

The real service (jtop/service.py) registers `get_queue`, `sync_data` and `sync_event` on a
multiprocessing manager bound to /run/jtop.sock with jetson-stats' authkey; the client sends
{'interval': s} on the queue, the service answers {'init': {...}}, then publishes a stats dict
(jtop's units: °C, mW, mV, mA, KB, kHz) into `sync_data` and sets `sync_event` every interval.
This does the same with fixed AGX-Orin-shaped readings, so tests run jetson-stats' unmodified
client against it. Run it by hand to try `--source jtop` off a Jetson:

    sudo python -m tests.fakes.jtop_service                 # serves /run/jtop.sock
    python -m tests.fakes.jtop_service --socket /tmp/j.sock # then FORGE_TUI_JTOP_SOCKET=/tmp/j.sock
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import signal
import time
from multiprocessing.managers import SyncManager
from typing import Any

from jtop.core.common import get_key, get_var
from jtop.service import JTOP_PIPE, VERSION_RE

# jtop-native readings of an AGX Orin 64GB training in MAXN with jetson_clocks on.
TEMPERATURE = {
    "cpu": {"temp": 71.5, "online": True},
    "gpu": {"temp": 74.25, "online": True},
    "soc0": {"temp": 69.0, "online": True},
    "tj": {"temp": 76.5, "online": True},
    "cv0": {"temp": -256, "online": False},
}
POWER = {
    "rail": {
        "VDD_GPU_SOC": {"online": True, "type": "INA3221", "status": "ok", "volt": 5080, "curr": 3000, "power": 15240, "avg": 14900, "warn": 32760, "crit": 32760},
        "VDD_CPU_CV": {"online": True, "type": "INA3221", "status": "ok", "volt": 5080, "curr": 1000, "power": 5080, "avg": 5000, "warn": 32760, "crit": 32760},
        "VIN_SYS_5V0": {"online": True, "type": "INA3221", "status": "ok", "volt": 5000, "curr": 1260, "power": 6300, "avg": 6200, "warn": 32760, "crit": 32760},
    },
    "tot": {"volt": 15160, "curr": 5260, "power": 26620, "avg": 26100, "name": "ALL"},
}
MEMORY = {
    "RAM": {"tot": 63_000_000, "used": 41_000_000, "free": 20_000_000, "buffers": 100_000, "cached": 1_900_000, "shared": 30_000_000, "lfb": 120},
    "SWAP": {"tot": 32_000_000, "used": 250_000, "cached": 0, "table": {}},
}
GPU = {"gpu": {"type": "integrated", "status": {"railgate": False, "tpc_pg_mask": False, "3d_scaling": True, "load": 97.5},
               "freq": {"governor": "nvhost_podgov", "min": 306000, "max": 1300500, "cur": 1300500, "GPC": [1300500, 1300500]},
               "power_control": "auto"}}
CPU = {"total": {"user": 40.0, "nice": 0.0, "system": 5.0, "idle": 55.0},
       "cpu": [{"online": True, "governor": "schedutil", "freq": {"min": 115200, "max": 2201600, "cur": 2201600},
                "info_freq": {"min": 115200, "max": 2201600, "cur": 2201600}, "idle_state": {},
                "user": 40.0, "nice": 0.0, "system": 5.0, "idle": 55.0, "model": "ARMv8 Processor rev 1 (v8l)"}
               for _ in range(12)]}
FAN = {"pwmfan": {"speed": [62.7], "rpm": [3120], "profile": "quiet"}}


def stats() -> dict[str, Any]:
    return {"uptime": 3600.0, "cpu": CPU, "gpu": GPU, "processes": [], "mem": MEMORY, "engines": {},
            "temperature": TEMPERATURE, "power": POWER, "fan": FAN,
            "jc": {"enable": True, "thread": False, "config": "/tmp/l4t_dfs.conf", "boot": False},
            "nvp": {"status": [True, False, False, False], "thread": False, "model": {"id": 0, "name": "MAXN"}}}


def init_message(version: str, interval: float) -> dict[str, Any]:
    return {"version": version, "board": {"hardware": {"Model": "NVIDIA Jetson AGX Orin Developer Kit (emulated)"}, "cpu": {}},
            "interval": interval, "memory": "/swapfile", "fan": {"pwmfan": "quiet"}, "jc": True,
            "nvpmodel": {"models": ["MAXN", "MODE_15W", "MODE_30W", "MODE_50W"], "default": {"id": 0, "name": "MAXN"}}}


class _Manager(SyncManager):
    """Serves the same typeids as jtop.service.JtopManager, forked so its callables need no pickling."""


def serve(socket: str, version: str) -> None:
    control: Any = multiprocessing.Queue()
    data: dict[str, Any] = {}
    event = multiprocessing.Event()
    _Manager.register("get_queue", callable=lambda: control)
    _Manager.register("sync_data", callable=lambda: data)
    _Manager.register("sync_event", callable=lambda: event)
    manager = _Manager(address=socket, authkey=get_key().encode("utf-8"), ctx=multiprocessing.get_context("fork"))
    manager.start()
    os.chmod(socket, 0o660)
    shared, ready = manager.sync_data(), manager.sync_event()  # type: ignore[attr-defined]
    interval, publishing, last = 1.0, False, 0.0
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            try:
                message = control.get(timeout=0.05)
            except queue.Empty:
                message = None
            if message and "init" in message:
                control.put(message)  # the client's reply, not ours: leave it for the client
                time.sleep(0.01)
            elif message and "interval" in message:
                interval, publishing = float(message["interval"]), True
                control.put({"init": init_message(version, interval)})
            if publishing and time.monotonic() - last >= interval:
                shared.update(stats())
                ready.set()
                last = time.monotonic()
    finally:
        manager.shutdown()
        if os.path.exists(socket):
            os.remove(socket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=JTOP_PIPE, help=f"unix socket to serve (default {JTOP_PIPE})")
    parser.add_argument("--version", default=get_var(VERSION_RE), help="jetson-stats version to announce")
    args = parser.parse_args()
    print(f"emulated jtop service on {args.socket}", flush=True)
    serve(args.socket, args.version)


if __name__ == "__main__":
    main()
