"""The thermal guard through replayed traces that cross both thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_tui.engine.telemetry.guard import GuardSettings, ThermalGuard
from forge_tui.engine.telemetry.replay import ReplaySource
from tests.helpers import ROOT, write_trace


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _play(path: Path, settings: GuardSettings, seconds: int, step: float = 1.0) -> list[tuple[float, str, float | None]]:
    """Feed the guard one replayed snapshot per `step` on a fake clock: (time, action, headroom)."""
    clock = Clock()
    source, guard = ReplaySource(path, clock=clock), ThermalGuard(settings, clock=clock)
    seen = []
    while clock.now < seconds:
        snapshot = source.sample()
        decision = guard.decide(snapshot)
        seen.append((clock.now, decision.action, snapshot.headroom.celsius if snapshot.headroom else None))
        clock.now += step
    return seen


def test_pause_below_resume_above_with_hysteresis(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.jsonl", [20, 12, 4.9, 7, 9.9, 10.5, 6, 3])
    actions = [action for _, action, _ in _play(trace, GuardSettings(5, 10), 8)]
    # 7 and 9.9 are between the thresholds: still paused; 6 after resuming is above 5: keeps running
    assert actions == ["run", "run", "pause", "wait", "wait", "resume", "run", "pause"]


def test_a_pause_longer_than_the_cap_stops(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "hot.jsonl", [2.0])
    seen = _play(trace, GuardSettings(5, 10, max_pause_seconds=30), 40)
    actions = [action for _, action, _ in seen]
    assert actions[0] == "pause"
    assert actions[1:30] == ["wait"] * 29
    assert actions[30] == "stop"


def test_decisions_carry_the_temperatures() -> None:
    guard = ThermalGuard(GuardSettings(5, 10))
    from forge_tui.engine.telemetry.snapshot import Sensor, Snapshot, Trip

    hot = Snapshot(time=0, source="t", sensors=(Sensor("gpu", 86.5, (Trip("passive", 90.0),)), Sensor("cpu", 60.0, ())))
    decision = guard.decide(hot)
    assert decision.action == "pause"
    assert "3.5 °C headroom on gpu" in decision.reason
    assert decision.details["temperatures_c"] == {"gpu": 86.5, "cpu": 60.0}
    assert decision.details["headroom_c"] == 3.5
    assert decision.details["limit_c"] == 90.0
    assert guard.decide(None).action == "wait"  # no reading: stays paused


def test_the_shipped_hot_recording_pauses_and_resumes() -> None:
    recording = ROOT / "sample_data/telemetry/orin-agx-hot-enclosure.jsonl"
    seen = _play(recording, GuardSettings(5, 10), 480)
    pauses = [room for _, action, room in seen if action == "pause"]
    resumes = [room for _, action, room in seen if action == "resume"]
    assert len(pauses) >= 2
    assert len(resumes) >= 2
    assert all(room < 5 for room in pauses)
    assert all(room >= 10 for room in resumes)
    order = [action for _, action, _ in seen if action in ("pause", "resume")]
    assert order[::2] == ["pause"] * len(order[::2])
    assert order[1::2] == ["resume"] * len(order[1::2])


def test_thresholds_must_leave_hysteresis() -> None:
    with pytest.raises(ValueError, match="resume_above"):
        ThermalGuard(GuardSettings(10, 10))
