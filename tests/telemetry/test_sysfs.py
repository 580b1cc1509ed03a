"""The sysfs source over a fake /sys tree."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from forge_tui.engine.telemetry.snapshot import Trip
from forge_tui.engine.telemetry.sysfs import NO_ZONES, SysfsSource
from tests.helpers import ORIN_ZONES, write_tree

JETSON_EXTRAS = {
    "sys/class/devfreq/17000000.ga10b/cur_freq": "918000000\n",
    "sys/class/devfreq/17000000.ga10b/max_freq": "1300500000\n",
    "sys/class/devfreq/17000000.ga10b/device/load": "990\n",
    "sys/class/hwmon/hwmon0/name": "ina3221\n",
    "sys/class/hwmon/hwmon0/in1_label": "VDD_GPU_SOC\n",
    "sys/class/hwmon/hwmon0/in1_input": "5080\n",
    "sys/class/hwmon/hwmon0/curr1_input": "3000\n",
    "sys/class/hwmon/hwmon1/name": "pwmfan\n",
    "sys/class/hwmon/hwmon1/pwm1": "128\n",
    "sys/class/hwmon/hwmon1/fan1_input": "2000\n",
}


def test_zones_trips_gpu_rails_and_fans(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {**ORIN_ZONES, **JETSON_EXTRAS})
    snapshot = SysfsSource(root).sample()
    cpu, _tj = snapshot.sensors
    assert (cpu.name, cpu.celsius) == ("cpu-thermal", 45.5)
    assert cpu.trips == (Trip("passive", 99.0), Trip("critical", 104.5), Trip("active", 50.0))
    assert cpu.limit == Trip("passive", 99.0)  # the active (fan) trip at 50 °C is not a limit
    assert snapshot.headroom.sensor == "tj-thermal"
    assert snapshot.headroom.celsius == 5.0
    (gpu,) = snapshot.gpus
    assert (gpu.load_percent, gpu.clock_mhz, gpu.clock_max_mhz) == (99.0, 918.0, 1300.5)
    assert snapshot.throttle.active
    assert "below its 1300 MHz maximum" in snapshot.throttle.reasons[0]
    (rail,) = snapshot.rails
    assert (rail.name, rail.watts, rail.volts, rail.amps) == ("VDD_GPU_SOC", 15.24, 5.08, 3.0)
    (fan,) = snapshot.fans
    assert (fan.percent, fan.rpm) == (50.2, 2000)
    assert snapshot.memory.ram_total_bytes > 0
    assert len(snapshot.cpu_percent) >= 1


def test_no_zones_is_said_plainly_not_zero(tmp_path: Path) -> None:
    snapshot = SysfsSource(tmp_path).sample()
    assert snapshot.sensors is None
    assert snapshot.headroom is None
    assert {"sensors", "gpus", "rails", "fans", "throttle"} <= set(snapshot.absent)
    assert NO_ZONES in snapshot.notes


def test_a_broken_sensor_is_skipped_and_not_read_again(tmp_path: Path) -> None:
    root = write_tree(tmp_path, ORIN_ZONES)
    broken = root / "sys/class/thermal/thermal_zone2"
    (broken / "temp").mkdir(parents=True)  # reading it fails with an OSError, as an EINVAL sensor does
    (broken / "type").write_text("cv0-thermal\n")
    source = SysfsSource(root)
    assert [s.name for s in source.sample().sensors] == ["cpu-thermal", "tj-thermal"]
    assert broken / "temp" in source.reader._dead
    (broken / "temp").rmdir()
    (broken / "temp").write_text("50000\n")
    assert [s.name for s in source.sample().sensors] == ["cpu-thermal", "tj-thermal"]  # not retried


def test_rapl_energy_counters_give_cpu_power_with_the_wrap(tmp_path: Path) -> None:
    """Two packages' counters rise 30 J and 12 J over 2 s: 15 W + 6 W; a counter that wrapped at its
    range still counts the rise; the first sample has no power (absent, not 0 W)."""
    rapl = "sys/class/powercap/intel-rapl:{}/"
    root = write_tree(tmp_path, {rapl.format(0) + "name": "package-0\n", rapl.format(0) + "energy_uj": "1000000\n",
                                 rapl.format(0) + "max_energy_range_uj": "262143328850\n",
                                 rapl.format(1) + "name": "package-1\n", rapl.format(1) + "energy_uj": "262140000000\n",
                                 rapl.format(1) + "max_energy_range_uj": "262143328850\n",
                                 "sys/class/powercap/intel-rapl:0:0/name": "core\n",
                                 "sys/class/powercap/intel-rapl:0:0/energy_uj": "5\n"})
    ticks = iter([10.0, 12.0])
    source = SysfsSource(root, clock=lambda: next(ticks))
    first = source.sample()
    assert first.power_total_watts is None
    assert "power_total_watts" in first.absent
    write_tree(root, {rapl.format(0) + "energy_uj": "31000000\n",
                      rapl.format(1) + "energy_uj": str(12_000_000 - (262143328850 - 262140000000)) + "\n"})
    second = source.sample()
    assert {r.name: r.watts for r in second.rails} == {"RAPL package-0": 15.0, "RAPL package-1": 6.0}
    assert second.power_total_watts == 21.0


def test_root_only_rapl_counters_are_said_not_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path, {"sys/class/powercap/intel-rapl:0/name": "package-0\n",
                                 "sys/class/powercap/intel-rapl:0/energy_uj": "1\n"})
    real = Path.read_text

    def locked(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "energy_uj":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", locked)
    source = SysfsSource(root)
    source.sample()
    snapshot = source.sample()
    assert snapshot.power_total_watts is None
    assert any("readable by root only" in note for note in snapshot.notes)
