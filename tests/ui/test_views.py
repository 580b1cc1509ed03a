"""The Monitor's text, folded from events and snapshots (no app needed)."""

from __future__ import annotations

import json

import pytest

from forge_tui.config import ThermalConfig
from forge_tui.engine import events as ev
from forge_tui.engine.bench import BenchItem as Item
from forge_tui.engine.bench import Settings, summarise
from forge_tui.engine.telemetry.snapshot import Memory, Sensor, Snapshot, Throttle, Trip
from forge_tui.ui.benchview import BenchView, item_scores, verdict
from forge_tui.ui.runview import LOG_LINES, MAX_POINTS, RunView
from forge_tui.ui.telemetry_view import headroom_colour, telemetry_markup
from forge_tui.units import duration


def _step(step: int, loss: float = 1.0) -> dict:
    return {"type": "step", "time": 0, "step": step, "total_steps": 900, "epoch": step / 100, "loss": loss,
            "lr": 1e-3, "tokens": 10, "tokens_per_second": 99.4, "eta_seconds": 125.0}


def _started() -> dict:
    return ev.RunStarted(run="r", mode="lora", device="cpu", precision="fp32", model="m", total_steps=900, start_step=0,
                         train_samples=80, eval_samples=8, effective_batch=4, threads=2, trainable_parameters=1234,
                         memory_estimate_bytes=2**30, memory_available_bytes=8 * 2**30, time=0).to_json()


def test_a_run_folds_into_headline_figures_and_log() -> None:
    view = RunView("r")
    view.apply([_started(), _step(1, 2.0), {"type": "eval", "time": 0, "step": 1, "eval_loss": 1.5}])
    assert view.headline() == "r  RUNNING  step 1/900  epoch 0.01  ETA 2m05s"
    assert view.figures() == "loss 2.000  eval 1.500  lr 1.0e-03  99 tok/s"
    started, evaluated = (line.split(" ", 1)[1] for line in view.log)  # steps are the chart's, not the log's
    assert started.startswith("run r: lora on cpu (fp32), steps 0->900, 80 train / 8 eval samples")
    assert "memory estimate 1.00 of 8.00 GiB available\ntelemetry none" in started
    assert evaluated == "eval loss 1.5000 at step 1"
    view.apply([{"type": "error", "time": 0, "message": "out of memory", "last_checkpoint": "/c/step-1"}])
    assert view.state == "failed"
    assert view.error == "out of memory"
    assert view.log[-1].endswith("(last checkpoint /c/step-1)")


def test_a_long_run_keeps_a_bounded_chart() -> None:
    view = RunView("r")
    for start in range(0, 5000, 100):
        view.apply([_step(s) for s in range(start, start + 100)])
    assert len(view.losses) <= MAX_POINTS
    assert view.losses[-1][0] > 4800


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
    assert "HEADROOM [$error]3.0 °C PAUSE" in hot
    assert "[$success]45.0 °C ok" in telemetry_markup(_snapshot(50.0), thermal)
    assert "THROTTLED" in hot
    assert "RAM  2.0/8.0G" in hot
    assert "gpu" in hot  # the next-hottest sensor is listed under the headline


def test_no_reading_says_why() -> None:
    assert "sensors not answering" in telemetry_markup(None, ThermalConfig())
    assert "no such file" in telemetry_markup(None, ThermalConfig(), "replay: no such file")


def test_a_full_log_still_hands_over_each_new_line() -> None:

    view = RunView("r")
    view.apply([{"type": "warning", "time": 0, "message": f"w{i}"} for i in range(LOG_LINES)])
    added = view.apply([{"type": "warning", "time": 0, "message": "late"}])
    assert [line.split(" ", 1)[1] for line in added] == ["warning: late"]
    assert len(view.log) == LOG_LINES
    assert view.log[-1].endswith("warning: late")


def _item(index: int, base: dict, tuned: dict, kind: str = "eval") -> dict:
    return {"type": "bench_item", "time": 0, "id": f"i{index}", "category": "c", "kind": kind, "question": "q?",
            "reference": "r", "facts": ["f"], "base": {"answer": "b", **base}, "tuned": {"answer": "t", **tuned}}


ITEMS = [
    _item(0, {"facts": 0.0, "similarity": 0.2, "nll_sum": 9.0, "nll_tokens": 3},
          {"facts": 1.0, "similarity": 0.8, "nll_sum": 3.0, "nll_tokens": 3}),
    _item(1, {"facts": 1.0, "similarity": 0.9, "nll_sum": 1.0, "nll_tokens": 2},
          {"facts": 0.0, "similarity": 0.3, "nll_sum": 5.0, "nll_tokens": 2}),
    _item(2, {"correct": 1.0}, {"correct": 1.0}, kind="retention"),
]


def test_a_running_benchmark_scores_the_items_so_far_with_the_engines_scoring(tmp_path) -> None:
    view = BenchView()
    view.apply([{"type": "bench_started", "time": 0, "items": 3, "eval_file": "e", "retention_file": None}, *ITEMS[:2],
                {"type": "bench_progress", "time": 0, "done": 2, "total": 3, "seconds": 1.0}])
    assert (view.state, view.done, view.total) == ("running", 2, 3)
    view.apply([ITEMS[2]])
    items = [Item(id=e["id"], category="c", kind=e["kind"], prompt=(), reference="r", facts=("f",)) for e in ITEMS]
    engine = summarise(items, [item_scores(e["base"]) for e in ITEMS], [item_scores(e["tuned"]) for e in ITEMS],
                       Settings(48, 16, 100, 0))
    rows = {name: (base, tuned) for name, base, tuned in view.summary()}
    assert rows["composite"][0] == pytest.approx(engine["base"]["composite"], abs=0.01)
    assert rows["composite"][1] == pytest.approx(engine["tuned"]["composite"], abs=0.01)
    assert rows["retention"] == (100.0, 100.0)
    assert [verdict(e) for e in ITEMS] == ["improved", "regressed", "same"]
    assert [e["id"] for e in view.shown_items("regressed")] == ["i1"]
    assert len(view.shown_items("all")) == 3
    result = tmp_path / "result.json"
    result.write_text(json.dumps({**engine, "items": []}))
    view.apply([{"type": "bench_result", "time": 0, "base": 1.0, "tuned": 2.0, "delta": 1.0, "ci95": [0, 2],
                 "result": str(result), "seconds": 3.0}])
    assert view.state == "done"
    assert view.interval().startswith("95% CI of the composite's change")
    view.apply([{"type": "bench_started", "time": 0, "items": 5, "eval_file": "e", "retention_file": None}])
    assert (view.state, view.items, view.result, view.summary()) == ("running", [], None, [])
    view.apply([{"type": "warning", "time": 0, "message": "benchmark failed: a warning is not a failure"}])
    assert view.state == "running"
    view.apply([ev.BenchFailed(message="out of memory", time=0).to_json()])
    assert view.state == "failed"
    assert view.error == "out of memory"


def test_sparklines_scale_between_bounds() -> None:
    from forge_tui.ui.telemetry_view import sparkline

    assert sparkline([0, 50, 100], 0, 100) == "▁▅█"
    assert sparkline([3, 3]) == "▁▁"
    assert sparkline([]) == ""
    assert sparkline([-5, 150], 0, 100) == "▁█"  # out of range is clamped


def test_history_graphs_take_each_reading_once() -> None:
    from dataclasses import replace as changed

    from forge_tui.ui.telemetry_view import HISTORY, TelemetryHistory

    history = TelemetryHistory()
    for index in range(HISTORY + 5):
        reading = changed(_snapshot(60.0 + index), time=float(index))
        history.add(reading)
        history.add(reading)  # shown twice, counted once
    assert len(history.headroom) == HISTORY
    assert history.headroom[-1] == pytest.approx(95.0 - 60.0 - HISTORY - 4)
    markup = telemetry_markup(reading, ThermalConfig(), history=history)
    latest = 95.0 - 60.0 - HISTORY - 4
    assert "headroom °C [$accent]" in markup
    assert markup.splitlines()[2].endswith(f" {latest:>5.1f}")  # the graph ends on the current value
    assert markup.index("headroom °C") < markup.index("RAM")


def test_the_monitor_log_tells_of_a_benchmark() -> None:
    view = RunView("r")
    added = view.apply([{"type": "bench_started", "time": 0, "items": 113},
                        {"type": "bench_progress", "time": 0, "done": 16, "total": 113, "seconds": 9.0},
                        {"type": "bench_result", "time": 0, "base": 24.71, "tuned": 71.3, "delta": 46.59, "ci95": [40.12, 52.0]},
                        ev.BenchFailed(message="a later one ran out of memory", time=0).to_json()])
    assert [line.split(" ", 1)[1] for line in added] == [
        "benchmark started: 113 items", "benchmark: composite 24.7 -> 71.3 (+46.6, 95% CI +40.1..+52.0)",
        "benchmark failed: a later one ran out of memory"]


def test_an_event_missing_fields_is_shown_not_raised() -> None:
    view = RunView("r")
    added = view.apply([{"type": "run_started", "time": 0, "device": "cpu"}, {"type": "mystery", "time": 0}])
    assert [line.split(" ", 1)[1] for line in added] == ["run_started: device cpu"]
    assert view.state == "running"
