"""The Monitor's text, folded from events and snapshots (no app needed)."""

from __future__ import annotations

from forge_tui.config import ThermalConfig
from forge_tui.engine.telemetry.snapshot import Memory, Sensor, Snapshot, Throttle, Trip
from forge_tui.ui.runview import MAX_POINTS, RunView, duration
from forge_tui.ui.telemetry_view import headroom_colour, telemetry_markup


def _step(step: int, loss: float = 1.0) -> dict:
    return {"type": "step", "time": 0, "step": step, "total_steps": 900, "epoch": step / 100, "loss": loss,
            "lr": 1e-3, "tokens": 10, "tokens_per_second": 99.4, "eta_seconds": 125.0}


def test_a_run_folds_into_headline_figures_and_log() -> None:
    view = RunView("r")
    view.apply([{"type": "run_started", "time": 0, "device": "cpu", "precision": "fp32", "total_steps": 900},
                _step(1, 2.0), {"type": "eval", "time": 0, "step": 1, "eval_loss": 1.5}])
    assert view.headline() == "r  RUNNING  step 1/900  epoch 0.01  ETA 2m05s"
    assert view.figures() == "loss 2.000  eval 1.500  lr 1.0e-03  99 tok/s"
    assert [line.split(" ", 1)[1] for line in view.log] == ["started on cpu (fp32), 900 steps", "eval loss 1.5000 at step 1"]
    view.apply([{"type": "error", "time": 0, "message": "out of memory", "last_checkpoint": "/c/step-1"}])
    assert view.state == "failed" and view.error == "out of memory" and view.log[-1].endswith("(last checkpoint /c/step-1)")


def test_a_long_run_keeps_a_bounded_chart() -> None:
    view = RunView("r")
    for start in range(0, 5000, 100):
        view.apply([_step(s) for s in range(start, start + 100)])
    assert len(view.losses) <= MAX_POINTS and view.losses[-1][0] > 4800


def test_durations_read_as_minutes_or_hours() -> None:
    assert (duration(59), duration(61), duration(3 * 3600 + 120)) == ("0m59s", "1m01s", "3h02m")


def _snapshot(celsius: float, throttled: bool = False) -> Snapshot:
    sensors = (Sensor("cpu", celsius, (Trip("passive", 95.0),)), Sensor("gpu", 50.0, (Trip("passive", 95.0),)))
    return Snapshot(time=0, source="sysfs", sensors=sensors, memory=Memory(8 * 1024**3, 2 * 1024**3),
                    throttle=Throttle(throttled, ("thermal",) if throttled else ()))


def test_headroom_is_coloured_against_the_guard_thresholds() -> None:
    thermal = ThermalConfig(pause_below=5.0, resume_above=10.0)
    assert [headroom_colour(c, thermal) for c in (4.9, 5.0, 9.9, 10.0)] == ["$error", "$warning", "$warning", "$success"]
    hot = telemetry_markup(_snapshot(92.0, throttled=True), thermal)
    assert "HEADROOM [$error]3.0 °C" in hot and "THROTTLED" in hot and "RAM  2.0/8.0G" in hot
    assert "gpu" in hot  # the next-hottest sensor is listed under the headline


def test_no_reading_says_why() -> None:
    assert "sensors not answering" in telemetry_markup(None, ThermalConfig())
    assert "no such file" in telemetry_markup(None, ThermalConfig(), "replay: no such file")


def test_a_full_log_still_hands_over_each_new_line() -> None:
    from forge_tui.ui.runview import LOG_LINES

    view = RunView("r")
    view.apply([{"type": "warning", "time": 0, "message": f"w{i}"} for i in range(LOG_LINES)])
    added = view.apply([{"type": "warning", "time": 0, "message": "late"}])
    assert [line.split(" ", 1)[1] for line in added] == ["warning: late"]
    assert len(view.log) == LOG_LINES and view.log[-1].endswith("warning: late")
