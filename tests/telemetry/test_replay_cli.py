"""Recording, replay and the `telemetry` command as an operator runs it."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from forge_tui.engine.telemetry.replay import ReplaySource, load_recording
from forge_tui.engine.telemetry.snapshot import Snapshot
from tests.helpers import ROOT, Clock, run_cli, write_trace

SHIPPED = ROOT / "sample_data/telemetry"


def test_this_machine_reports_its_zones_or_says_there_are_none() -> None:
    result = run_cli("telemetry", "--once", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    zones = list(Path("/sys/class/thermal").glob("thermal_zone*"))
    if zones:
        assert report["sensors"], "thermal zones exist but none was reported"
    else:
        assert report["sensors"] is None
        assert "sensors" in report["absent"]
        assert any("no thermal zones" in note for note in report["notes"])
    assert report["memory"]["ram_total_bytes"] > 0
    assert [f["source"] for f in report["fallbacks"]] == ["jtop", "nvml"][: len(report["fallbacks"])]


def test_record_then_replay_round_trip(tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    result = run_cli("telemetry", "--record", str(recording), "--duration", "0.6", "--interval", "0.2", "--json")
    assert result.returncode == 0, result.stderr
    meta, snapshots = load_recording(recording)
    assert meta["source"] == "sysfs"
    assert not meta["synthetic"]
    assert len(snapshots) >= 3
    assert [json.loads(line)["time"] for line in result.stdout.splitlines()] == [s.time for s in snapshots]
    replayed = run_cli("telemetry", "--source", f"replay:{recording}", "--once", "--json")
    assert replayed.returncode == 0, replayed.stderr
    again = json.loads(replayed.stdout)
    assert again["source"] == "replay"
    assert again["memory"] == json.loads(result.stdout.splitlines()[0])["memory"]


def test_a_recording_stopped_by_sigterm_is_closed_whole_even_with_sigint_ignored(tmp_path: Path) -> None:
    """A recording under a job started in the background (SIGINT ignored from the start) or a service
    manager ends with `kill` (SIGTERM): the command exits 0 and every snapshot line is whole."""
    recording = tmp_path / "rec.jsonl"
    record = f"{shlex.quote(sys.executable)} -m forge_tui telemetry --record {shlex.quote(str(recording))} --interval 0.2"
    command = f"trap '' INT; exec {record}"
    process = subprocess.Popen(["sh", "-c", command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (not recording.is_file() or len(recording.read_text().splitlines()) < 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # ignored, as it is for a background job
    time.sleep(0.5)
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    _, snapshots = load_recording(recording)
    assert len(snapshots) >= 2
    assert recording.read_text().endswith("\n")


def test_replay_follows_the_recorded_clock_at_speed_and_loops(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.jsonl", [30, 20, 10], step=2.0)
    clock = Clock()
    source = ReplaySource(trace, speed=2.0, clock=clock)
    rooms = []
    for _ in range(7):
        rooms.append(source.sample().headroom.celsius)
        clock.now += 1.0  # 2 s of recording per second at 2x
    assert rooms == [30, 20, 10, 30, 20, 10, 30]


def test_a_recording_cut_by_power_loss_still_plays(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.jsonl", [30, 20])
    trace.write_bytes(trace.read_bytes() + b'{"time": 1002.0, "sour')
    assert len(load_recording(trace)[1]) == 2


def test_bad_input_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"recording": "forge-telemetry", "version": 1}\n{"time": 1, "source": "x"}\nnot json\n{"time": 3}\n')
    result = run_cli("telemetry", "--source", f"replay:{bad}", "--once")
    assert result.returncode == 2
    assert f"{bad}:3:" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("telemetry", "--source", "bogus", "--once").returncode == 2
    existing = tmp_path / "keep.jsonl"
    existing.write_text("precious\n")
    refused = run_cli("telemetry", "--record", str(existing), "--once")
    assert refused.returncode == 2
    assert existing.read_text() == "precious\n"
    assert run_cli("telemetry", "--interval", "0", "--once").returncode == 2


def test_the_shipped_recordings_are_synthetic_and_orin_shaped() -> None:
    # reproducible from sample_data/generate.py: tests/unit/test_sample_data.py runs its --check
    for name in ("orin-agx-training.jsonl", "orin-agx-hot-enclosure.jsonl"):
        meta, snapshots = load_recording(SHIPPED / name)
        assert meta["synthetic"]
        assert "SYNTHETIC" in meta["description"]
        first = snapshots[-1]
        assert first.power_mode == "MAXN"
        assert first.memory.gpu_shared_bytes
        assert len(first.cpu_percent) == 12
        assert {s.name for s in first.sensors} >= {"cpu", "gpu", "tj"}
        assert first.rails
        assert first.headroom


def test_recordings_with_bad_values_are_refused_with_their_line(tmp_path: Path) -> None:
    head = '{"recording": "forge-telemetry", "version": 1}\n{"time": 1, "source": "x"}\n'
    cases = {
        "repeat.jsonl": '{"time": 1, "source": "x"}\n',                       # the clock must move forward
        "nan.jsonl": '{"time": 2, "source": "x", "sensors": [{"name": "tj", "celsius": NaN}]}\n',
        "shape.jsonl": '{"time": 2, "source": "x", "sensors": ["x"]}\n',
        "flag.jsonl": '{"time": 2, "source": "x", "jetson_clocks": "false"}\n',
        "huge.jsonl": '{"time": 1' + "0" * 400 + ', "source": "x"}\n',
    }
    for name, line in cases.items():
        path = tmp_path / name
        path.write_text(head + line)
        result = run_cli("telemetry", "--source", f"replay:{path}", "--once")
        assert result.returncode == 2, (name, result.stderr)
        assert f"{path}:3:" in result.stderr, (name, result.stderr)
    missing_dir = run_cli("telemetry", "--record", str(tmp_path / "no" / "such" / "rec.jsonl"), "--once")
    assert missing_dir.returncode == 2
    assert "cannot create the recording" in missing_dir.stderr


def test_an_offline_sensor_recorded_as_minus_256_reads_as_absent(tmp_path: Path) -> None:
    """Recordings made before offline sensors were null hold jtop's -256: it is dropped on reading."""
    sensor = {"name": "cv0", "celsius": -256.0, "trips": [{"kind": "passive", "celsius": 99.0}], "online": False}
    snapshot = Snapshot.from_json({"time": 1.0, "source": "jtop", "sensors": [sensor]})
    (read,) = snapshot.sensors
    assert (read.celsius, read.online, read.headroom) == (None, False, None)
    assert snapshot.headroom is None
    assert snapshot.to_json()["sensors"][0]["celsius"] is None
    assert snapshot.absent[-1] == "sensors.cv0.celsius"
    assert Snapshot.from_json(json.loads(json.dumps(snapshot.to_json()))) == snapshot
