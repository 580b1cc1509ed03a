"""The thermal guard acting on a real (tiny) runner through replayed traces: pause with a checkpoint,
resume by itself, the same adapter as an uninterrupted run, and a clean stop after a capped pause."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from forge_tui.engine.events import read_events
from tests.helpers import adapter_tensors, run_cli, run_dir, train, wait_for_event, write_trace


def _guarded(config: Path, trace: Path, thermal: str) -> Path:
    text = config.read_text() + f'\n[telemetry]\nsource = "replay:{trace}"\ninterval = 0.05\n[thermal]\n{thermal}\n'
    guarded = config.with_name("guarded.toml")
    guarded.write_text(text)
    return guarded


def test_a_hot_trace_pauses_and_resumes_a_run_without_changing_its_result(tiny_config: Path, tiny_run, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "hot.jsonl", [20, 2, 2, 7, 7, 15, 15, 15], step=0.25, watts=12.0)
    result = train(_guarded(tiny_config, trace, "pause_below = 5.0\nresume_above = 10.0"))
    assert result.returncode == 0, result.stderr
    run = run_dir(result)
    events = read_events(run / "events.jsonl")
    started = events[0]
    assert (started["telemetry_source"], started["thermal_guard"], started["thermal_headroom_c"]) == ("replay", True, 20.0)
    kinds = [e["type"] for e in events]
    assert "paused" in kinds
    assert kinds[-1] == "finished"
    for index, event in enumerate(events):
        if event["type"] != "paused":
            continue
        assert event["details"]["headroom_c"] == 2.0
        assert event["details"]["temperatures_c"] == {"tj": 88.0}
        assert "resumes above 10 °C" in event["reason"]
        before = events[index - 1]
        assert before["type"] == "checkpoint"
        assert before["step"] == event["step"]
        after = events[index + 1]  # nothing ran while paused; it resumed by itself once cool (not at 7 °C)
        assert after["type"] == "resumed"
        assert after["details"]["headroom_c"] == 15.0
        assert after["step"] == event["step"]
    assert "paused" in result.stdout
    assert "resumed" in result.stdout
    _check_the_runs_record(run, events)
    plain = tiny_run.path  # the same config without the trace, never paused
    assert adapter_tensors(run).keys() == adapter_tensors(plain).keys()
    for name, tensor in adapter_tensors(plain).items():
        assert tensor.equal(adapter_tensors(run)[name]), name


def _check_the_runs_record(run: Path, events: list[dict]) -> None:
    """The run's thermal and energy record, read back by `runs --json`, against hand arithmetic on
    the rows it wrote: at a constant 12 W, each row's joules are 12 x its metered seconds."""
    lines = [json.loads(line) for line in (run / "telemetry.jsonl").read_text().splitlines()]
    assert lines[0]["record"] == "forge-run-telemetry"
    rows = lines[1:]
    assert rows
    assert all(row["joules"] == pytest.approx(12.0 * row["metered_s"], abs=0.01) for row in rows)  # both rounded to 3 places
    metered = sum(row["metered_s"] for row in rows)
    tokens = sum(e["tokens"] for e in events if e["type"] == "step")
    (listed,) = [r for r in json.loads(run_cli("--config", str(run.parent.parent / "guarded.toml"), "runs", "--json").stdout)
                 if r["name"] == run.name]
    record = listed["record"]
    assert record["energy_j"] == pytest.approx(12.0 * metered, rel=1e-3)
    assert record["energy_wh"] == pytest.approx(12.0 * metered / 3600, rel=1e-3)
    assert record["joules_per_token"] == pytest.approx(12.0 * metered / tokens, rel=1e-3)
    assert record["watts_max"] == 12.0
    assert (record["headroom_min_c"], record["headroom_sensor"], record["peaks_c"]) == (2.0, "tj", {"tj": 88.0})
    resumed = [e["details"]["paused_seconds"] for e in events if e["type"] == "resumed"]
    assert record["paused_s"] == pytest.approx(sum(resumed), abs=0.05)
    assert record["paused_s"] > 0
    assert record["tokens"] == tokens


def test_a_pause_past_its_cap_stops_the_run_cleanly(tiny_config: Path, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "oven.jsonl", [3.0])
    result = train(_guarded(tiny_config, trace, "max_pause_minutes = 0.01"))
    assert result.returncode == 0, result.stderr
    run = run_dir(result)
    kinds = [e["type"] for e in read_events(run / "events.jsonl")]
    assert kinds[-3:] == ["checkpoint", "paused", "stopped"]
    stopped = read_events(run / "events.jsonl")[-1]
    assert stopped["reason"].startswith("thermal guard: still hot")
    assert stopped["step"] == 0
    assert stopped["details"]["headroom_c"] == 3.0
    assert stopped["details"]["temperatures_c"] == {"tj": 87.0}
    assert "thermal guard" in result.stdout
    (row,) = json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)
    assert row["state"] == "stopped"
    assert row["reason"].startswith("thermal guard: still hot")


def test_a_bad_recording_is_refused_before_the_run_exists(tiny_config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"recording": "forge-telemetry", "version": 1}\n{"time": "soon"}\n')
    result = train(_guarded(tiny_config, bad, ""))
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_paused_runner_shows_why_and_stops_when_asked(tiny_config: Path, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "oven.jsonl", [3.0])
    config = _guarded(tiny_config, trace, "")
    started = run_cli("--config", str(config), "train", "--detach")
    assert started.returncode == 0, started.stderr
    run = Path(started.stdout.strip().splitlines()[-1])
    wait_for_event(run, "paused", timeout=120)
    (row,) = json.loads(run_cli("--config", str(config), "runs", "--json").stdout)
    assert row["state"] == "paused"
    assert "3.0 °C headroom on tj" in row["reason"]
    assert row["pid"]
    assert run_cli("--config", str(config), "stop", run.name).returncode == 0
    stopped = wait_for_event(run, "stopped", timeout=60)
    assert stopped["reason"] == "operator"
    assert stopped["step"] == 0
    assert Path(stopped["checkpoint"]).name == "step-000000"


def test_sigterm_while_paused_then_resume_ends_with_the_uninterrupted_adapter(tiny_config: Path, tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "warming.jsonl", [20.0] * 3 + [3.0] * 400, step=0.5)  # cool for 1.5 s, then hot
    config = _guarded(tiny_config, trace, "")
    started = run_cli("--config", str(config), "train", "--detach", "--max-steps", "30")
    assert started.returncode == 0, started.stderr
    run = Path(started.stdout.strip().splitlines()[-1])
    paused = wait_for_event(run, "paused", timeout=120)
    assert 0 < paused["step"] < 30, "the trace should turn hot mid-run"
    (row,) = json.loads(run_cli("--config", str(config), "runs", "--json").stdout)
    os.kill(row["pid"], signal.SIGTERM)
    stopped = wait_for_event(run, "stopped", timeout=60)
    assert stopped["reason"] == "operator"
    assert stopped["step"] == paused["step"]
    write_trace(trace, [20.0])  # the enclosure cooled: the resumed run plays a cool trace
    resumed = run_cli("--config", str(config), "resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    restarted = [e for e in read_events(run / "events.jsonl") if e["type"] == "run_started"][-1]
    assert restarted["start_step"] == paused["step"]
    plain = adapter_tensors(run_dir(train(tiny_config, "--max-steps", "30")))
    for name, tensor in adapter_tensors(run).items():
        assert tensor.equal(plain[name]), name
