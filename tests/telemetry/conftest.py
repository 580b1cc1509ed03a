"""Fixtures for the telemetry tests: a fake /sys tree, a running emulated jtop service."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


ORIN_ZONES = {
    "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
    "sys/class/thermal/thermal_zone0/temp": "45500\n",
    "sys/class/thermal/thermal_zone0/trip_point_0_type": "passive\n",
    "sys/class/thermal/thermal_zone0/trip_point_0_temp": "99000\n",
    "sys/class/thermal/thermal_zone0/trip_point_1_type": "critical\n",
    "sys/class/thermal/thermal_zone0/trip_point_1_temp": "104500\n",
    "sys/class/thermal/thermal_zone0/trip_point_2_type": "active\n",
    "sys/class/thermal/thermal_zone0/trip_point_2_temp": "50000\n",
    "sys/class/thermal/thermal_zone1/type": "tj-thermal\n",
    "sys/class/thermal/thermal_zone1/temp": "80000\n",
    "sys/class/thermal/thermal_zone1/trip_point_0_type": "hot\n",
    "sys/class/thermal/thermal_zone1/trip_point_0_temp": "85000\n",
}


@pytest.fixture
def orin_sysfs(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "root", ORIN_ZONES)


def start_service(socket: Path, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.jtop_service", "--socket", str(socket), *extra],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"emulated jtop service did not start: {process.communicate()[1].decode()}")
        time.sleep(0.05)
    return process


@pytest.fixture
def jtop_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An emulated jtop service on a socket under tmp_path; FORGE_TUI_JTOP_SOCKET points at it."""
    socket = tmp_path / "jtop.sock"
    process = start_service(socket)
    monkeypatch.setenv("FORGE_TUI_JTOP_SOCKET", str(socket))
    yield socket
    process.terminate()
    process.wait(timeout=10)


def write_trace(path: Path, headrooms: list[float], step: float = 1.0, limit: float = 90.0) -> Path:
    """A recording whose one sensor has the given headroom to a passive trip at `limit`, `step` s apart."""
    from forge_tui.engine.telemetry.replay import header
    from forge_tui.engine.telemetry.snapshot import Sensor, Snapshot, Trip

    lines = [header("test", synthetic=True)]
    for index, room in enumerate(headrooms):
        sensor = Sensor("tj", limit - room, (Trip("passive", limit),))
        lines.append(Snapshot(time=1000.0 + index * step, source="test", sensors=(sensor,)).to_json())
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path
