"""A run's thermal and energy record: rows written from snapshots, read back into the figures a
technician asks for; every expected number below is worked out by hand from the inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_tui.engine.telemetry.record import FILE, RunRecorder, paused_seconds, run_record, runner_seconds
from forge_tui.engine.telemetry.snapshot import Sensor, Snapshot, Throttle, Trip


def _reading(time: float, watts: float | None, tj: float, throttled: bool | None = False) -> Snapshot:
    sensors = (Sensor("tj", tj, (Trip("passive", 90.0),)), Sensor("gpu", tj - 2.0, (Trip("passive", 99.0),)),
               Sensor("cv0", None, (Trip("passive", 99.0),)))
    return Snapshot(time=time, source="jtop", sensors=sensors, power_total_watts=watts,
                    throttle=None if throttled is None else Throttle(throttled))


def _record(folder: Path, readings: list[Snapshot], window: float = 5.0) -> list[dict]:
    recorder = RunRecorder(folder / FILE, "jtop", window)
    for reading in readings:
        recorder.add(reading)
        recorder.add(reading)  # the same reading twice counts once
    recorder.close()
    return [json.loads(line) for line in (folder / FILE).read_text().splitlines()]


def test_energy_is_the_trapezoid_of_the_power_and_rows_tile_the_run(tmp_path: Path) -> None:
    readings = [_reading(100.0, 10.0, 60.0), _reading(102.0, 20.0, 70.0, True), _reading(104.0, 20.0, 84.0, True),
                _reading(106.0, 40.0, 75.0)]
    header, first, second = _record(tmp_path, readings)
    assert header["record"] == "forge-run-telemetry"
    assert header["meter"].startswith("Jetson INA3221")
    # window 1 holds 100..104: (10+20)/2*2 + (20+20)/2*2 = 30 + 40 = 70 J; throttled from 102 to 104: 2 s
    assert (first["t0"], first["t1"], first["samples"], first["joules"], first["throttled_s"]) == (100.0, 104.0, 3, 70.0, 2.0)
    assert (first["headroom_min_c"], first["headroom_sensor"], first["peak_c"]) == (6.0, "tj", {"tj": 84.0, "gpu": 82.0})
    # 106 is 6 s past the window's start: a new row from 104 (no gap): (20+40)/2*2 = 60 J, throttled 104..106: 2 s
    assert (second["t0"], second["t1"], second["joules"], second["throttled_s"], second["watts_max"]) == (104.0, 106.0, 60.0, 2.0, 40.0)
    record = run_record(tmp_path, [])
    assert record.energy_j == 130.0
    assert record.energy_wh == pytest.approx(130.0 / 3600)
    assert record.watts_mean == pytest.approx(130.0 / 6)   # 6 metered seconds
    assert (record.watts_max, record.throttled_s) == (40.0, 4.0)
    assert (record.headroom_min_c, record.headroom_sensor) == (6.0, "tj")
    assert record.peaks_c == {"tj": 84.0, "gpu": 82.0}   # the offline sensor has no peak, not -256


def test_no_meter_means_no_energy_not_zero(tmp_path: Path) -> None:
    _record(tmp_path, [_reading(float(t), None, 60.0, None) for t in range(0, 12, 2)])
    record = run_record(tmp_path, [{"type": "run_started", "time": 0.0}, {"type": "step", "time": 10.0, "tokens": 500}])
    assert (record.energy_j, record.energy_wh, record.joules_per_token, record.watts_mean) == (None, None, None, None)
    assert record.throttled_s is None   # the source says nothing of throttling: unknown, not 0 s
    assert record.tokens == 500
    assert record.to_json()["energy_j"] is None


def test_one_meterless_gap_is_left_out_of_the_energy_and_its_seconds(tmp_path: Path) -> None:
    # 0..2 metered (10 W): 20 J; 2..4 has no reading at 4: left out; 4..6 metered (30 W): 60 J
    _record(tmp_path, [_reading(0.0, 10.0, 50.0), _reading(2.0, 10.0, 50.0), _reading(4.0, None, 50.0),
                       _reading(5.0, 30.0, 50.0), _reading(7.0, 30.0, 50.0)], window=100.0)
    record = run_record(tmp_path, [])
    assert record.energy_j == 20.0 + 60.0
    assert record.watts_mean == pytest.approx(80.0 / 4)


def test_time_tokens_and_pauses_come_from_the_events_across_a_resume() -> None:
    events = [{"type": "run_started", "time": 1000.0, "setup_seconds": 4.0}, {"type": "step", "time": 1010.0, "tokens": 300},
              {"type": "paused", "time": 1011.0}, {"type": "stopped", "time": 1041.0, "details": {"paused_seconds": 30.0}},
              {"type": "run_started", "time": 5000.0}, {"type": "resumed", "time": 5012.5, "details": {"paused_seconds": 12.5}},
              {"type": "step", "time": 5020.0, "tokens": 200}, {"type": "finished", "time": 5021.0},
              {"type": "bench_started", "time": 9000.0}, {"type": "bench_result", "time": 9100.0}]
    # 4 s of setup before the first run_started; the hour between the runners and the benchmark are not run time
    assert runner_seconds(events) == 4.0 + 41.0 + 21.0
    assert paused_seconds(events) == 42.5


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    _record(tmp_path, [_reading(0.0, 10.0, 50.0), _reading(2.0, 10.0, 50.0)])
    with open(tmp_path / FILE, "a") as handle:
        handle.write('{"t0": 2.0, "t1": 4.0, "jou')
    assert run_record(tmp_path, []).energy_j == 20.0


def test_the_time_between_runners_is_not_run_time() -> None:
    """A runner stopped at 101 s, its resume a day later warned before it started (its own setup: 40 s),
    ran to 86 501; a third start failed in setup after a killed runner. Only the runners' work counts."""
    events = [{"type": "run_started", "time": 10.0, "setup_seconds": 10.0}, {"type": "step", "time": 100.0, "tokens": 1},
              {"type": "stopped", "time": 101.0}, {"type": "warning", "time": 86_400.0},
              {"type": "run_started", "time": 86_430.0, "setup_seconds": 40.0}, {"type": "step", "time": 86_500.0, "tokens": 1},
              {"type": "finished", "time": 86_501.0}, {"type": "error", "time": 90_000.0}]
    assert runner_seconds(events) == 101.0 + (86_501.0 - 86_390.0)
    killed = [{"type": "run_started", "time": 0.0}, {"type": "step", "time": 50.0},
              {"type": "run_started", "time": 1000.0, "setup_seconds": 5.0}, {"type": "finished", "time": 1010.0}]
    assert runner_seconds(killed) == 50.0 + 15.0


def test_a_clock_stepped_forward_or_back_adds_no_energy(tmp_path: Path) -> None:
    """An NTP step of an hour between two readings is left unmetered; a step back starts afresh."""
    _record(tmp_path, [_reading(0.0, 10.0, 50.0), _reading(2.0, 10.0, 50.0), _reading(3602.0, 10.0, 50.0),
                       _reading(3604.0, 10.0, 50.0), _reading(100.0, 10.0, 50.0), _reading(102.0, 10.0, 50.0)], window=1e6)
    assert run_record(tmp_path, []).energy_j == 20.0 + 20.0 + 20.0
