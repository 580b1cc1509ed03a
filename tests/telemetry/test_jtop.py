"""The jtop source against jetson-stats' own client, talking to an emulated service over the real
socket protocol (tests/fakes/jtop_service.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_tui.engine.telemetry import open_source
from forge_tui.engine.telemetry.jtop_source import JtopSource, explain, sensors
from forge_tui.engine.telemetry.snapshot import Trip
from forge_tui.errors import ForgeError
from tests.helpers import run_cli, start_service

KB = 1024


def test_readings_arrive_in_the_documented_units(jtop_service: Path, orin_sysfs: Path) -> None:
    source = JtopSource(interval=0.5, socket=str(jtop_service), sysfs_root=orin_sysfs)
    try:
        snapshot = source.sample()
    finally:
        source.close()
    temps = {s.name: s for s in snapshot.sensors}
    assert (temps["cpu"].celsius, temps["tj"].celsius, temps["gpu"].celsius) == (71.5, 76.5, 74.25)
    assert not temps["cv0"].online
    assert temps["cv0"].celsius is None  # jtop's -256 is never passed on
    assert temps["cv0"].headroom is None
    # trip points come from /sys/class/thermal, matched by jtop's names (cpu-thermal -> cpu)
    assert temps["cpu"].limit == Trip("passive", 99.0)
    assert temps["cpu"].headroom == 27.5
    assert temps["tj"].limit == Trip("hot", 85.0)
    assert snapshot.headroom.sensor == "tj"
    assert snapshot.headroom.celsius == 8.5
    rails = {r.name: r for r in snapshot.rails}
    gpu_rail = rails["VDD_GPU_SOC"]
    assert (gpu_rail.watts, gpu_rail.volts, gpu_rail.amps, gpu_rail.average_watts) == (15.24, 5.08, 3.0, 14.9)
    assert snapshot.power_total_watts == pytest.approx(26.62)
    memory = snapshot.memory
    assert memory.ram_total_bytes == 63_000_000 * KB
    assert memory.ram_used_bytes == 41_000_000 * KB
    assert memory.gpu_shared_bytes == 30_000_000 * KB
    assert memory.swap_total_bytes == 32_000_000 * KB
    (gpu,) = snapshot.gpus
    assert (gpu.load_percent, gpu.clock_mhz, gpu.clock_max_mhz) == (97.5, 1300.5, 1300.5)
    assert snapshot.cpu_percent == (45.0,) * 12
    assert (snapshot.fans[0].percent, snapshot.fans[0].rpm) == (62.7, 3120)
    assert (snapshot.power_mode, snapshot.jetson_clocks) == ("MAXN", True)
    assert snapshot.throttle is not None
    assert not snapshot.throttle.active
    assert snapshot.absent == ("sensors.cv0.celsius",)


def test_auto_prefers_jtop_and_the_cli_reports_it(jtop_service: Path) -> None:
    opened = open_source("auto", interval=0.5)
    try:
        assert opened.source.name == "jtop"
        assert opened.fallbacks == []
    finally:
        opened.source.close()
    result = run_cli("telemetry", "--source", "jtop", "--once", "--json", "--interval", "0.5")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == "jtop"
    assert report["power_mode"] == "MAXN"
    assert {s["name"]: s["celsius"] for s in report["sensors"]}["tj"] == 76.5
    offline = [s for s in report["sensors"] if not s["online"]]
    assert [(s["name"], s["celsius"]) for s in offline] == [("cv0", None)]
    assert "sensors.cv0.celsius" in report["absent"]
    assert report["rails"][0] == {"name": "VDD_GPU_SOC", "watts": 15.24, "average_watts": 14.9, "volts": 5.08,
                                  "amps": 3.0, "limit_watts": None}


def test_a_version_mismatch_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = tmp_path / "old.sock"
    process = start_service(socket, "--version", "4.2.0")
    monkeypatch.setenv("FORGE_TUI_JTOP_SOCKET", str(socket))
    try:
        with pytest.raises(ForgeError, match=r"jtop service 4\.2\.0 and client .* differ: install jetson-stats==4\.2\.0"):
            open_source("jtop", interval=0.5)
        opened = open_source("auto", interval=0.5)
        assert opened.source.name != "jtop"
        assert "differ" in opened.fallbacks[0].reason
        opened.source.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_no_service_says_what_to_do(tmp_path: Path) -> None:
    missing = run_cli("telemetry", "--source", "jtop", "--once", env={"FORGE_TUI_JTOP_SOCKET": str(tmp_path / "none.sock")})
    assert missing.returncode == 1
    assert "sudo jtop --install-service" in missing.stderr
    assert "Traceback" not in missing.stderr
    stale = tmp_path / "stale.sock"  # left behind by a service that died: the connection is refused
    stale.write_text("")
    refused = run_cli("telemetry", "--source", "jtop", "--once", env={"FORGE_TUI_JTOP_SOCKET": str(stale)})
    assert refused.returncode == 1
    assert "jtop service is not running" in refused.stderr


def test_permission_and_auth_messages_from_jetson_stats_are_translated() -> None:
    # jetson-stats' own texts (jtop/jtop.py, start())
    denied = explain("I can't access jtop.service.\nPlease logout or reboot this board.", "/run/jtop.sock")
    assert "jtop group" in denied
    assert "usermod -aG jtop" in denied
    assert "authentication failed" in explain("Authentication with jetson-stats server failed", "/run/jtop.sock")


def test_hwmon_style_limits_are_used_when_sysfs_has_no_zone() -> None:
    found = sensors({"CPU-therm": {"temp": 60.0, "online": True, "max": 90.0, "crit": 100.0}}, {})
    assert found[0].limit == Trip("hot", 90.0)
    assert found[0].headroom == 30.0
