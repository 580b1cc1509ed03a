"""Pilot tests of the Monitor and Runs screens over real run directories: a live run (its runner's
lock held, its events written through the engine's EventLog) is attached on start and followed as
it goes; a run whose runner vanished shows as interrupted; telemetry comes from a replayed
recording; stop writes the run's stop request."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.widgets import DataTable, RichLog

from forge_tui.config import Config, RunsConfig, TelemetryConfig
from forge_tui.engine import events as ev
from forge_tui.engine.runner import RunnerLock
from forge_tui.engine.runs import create_run
from forge_tui.engine.telemetry.record import RunRecorder
from forge_tui.engine.telemetry.snapshot import Sensor, Snapshot, Trip
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.screens.monitor import MonitorScreen
from forge_tui.ui.screens.runs import RunsScreen
from forge_tui.ui.screens.side_by_side import SideBySideScreen
from tests.helpers import ROOT, SAMPLE, place_final_adapter, runs_table, shown, text_of, wait_for

HOT = ROOT / "sample_data" / "telemetry" / "orin-agx-hot-enclosure.jsonl"


def _config(tmp_path: Path) -> Config:
    return Config(runs=RunsConfig(dir=str(tmp_path / "runs")),
                  telemetry=TelemetryConfig(source=f"replay:{HOT}", interval=0.2, replay_speed=50.0))


def _started(total: int = 10) -> ev.RunStarted:
    return ev.RunStarted(run="r", mode="lora", device="cpu", precision="fp32", model="m", total_steps=total,
                         start_step=0, train_samples=80, eval_samples=8, effective_batch=8, threads=2,
                         trainable_parameters=1, memory_estimate_bytes=1, memory_available_bytes=2)


def _step(step: int, loss: float, total: int = 10) -> ev.Step:
    return ev.Step(step=step, total_steps=total, epoch=step / total, loss=loss, lr=1e-3, tokens=100,
                   tokens_per_second=50.0, eta_seconds=30.0)


async def test_a_live_run_is_attached_on_start_and_followed(embedded_model, tmp_path) -> None:
    config = _config(tmp_path)
    run = create_run(config, SAMPLE / "train.jsonl")
    lock, log = RunnerLock(run), ev.EventLog(run.events)
    log.emit(_started())
    log.emit(_step(1, 2.5))
    app = ForgeApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        shown(app, MonitorScreen)
        await wait_for(pilot, lambda: "step 1/10" in text_of(app, "#run-headline"))
        assert "RUNNING" in text_of(app, "#run-headline")
        assert "loss 2.500" in text_of(app, "#run-figures")
        log.emit(_step(2, 1.9))
        log.emit(ev.Eval(step=2, eval_loss=2.0, eval_tokens=10))
        log.emit(ev.Paused(step=2, reason="3.1 °C headroom on cpu, resumes at 10.0 °C"))
        await wait_for(pilot, lambda: "PAUSED" in text_of(app, "#run-headline"))
        assert "step 2/10" in text_of(app, "#run-headline")
        assert "paused: 3.1 °C headroom" in text_of(app, "#run-figures")
        assert "eval 2.000" in text_of(app, "#run-figures")
        await wait_for(pilot, lambda: "HEADROOM" in text_of(app, "#telemetry"))
        assert "source replay" in text_of(app, "#telemetry")
        lock.release()  # the runner dies without a last event (kill -9, power loss)
        await wait_for(pilot, lambda: "INTERRUPTED" in text_of(app, "#run-headline"))
    log.close()


async def test_runs_lists_attaches_and_stops(embedded_model, tmp_path) -> None:
    config = _config(tmp_path)
    done = create_run(config, SAMPLE / "train.jsonl", tmp_path / "runs" / "a-done")
    log = ev.EventLog(done.events)
    log.emit(_started(2))
    log.emit(_step(2, 0.5, total=2))
    log.emit(ev.Finished(step=2, adapter="x", train_loss=0.5, eval_loss=0.6, seconds=1.0, peak_memory_bytes=1))
    place_final_adapter(done.path)
    log.close()
    live = create_run(config, SAMPLE / "train.jsonl", tmp_path / "runs" / "b-live")
    lock = RunnerLock(live)
    app = ForgeApp(replace(config))
    async with app.run_test(size=(80, 24)) as pilot:
        table = await runs_table(pilot, lambda table: table.row_count == 2)
        assert [table.get_row_at(i)[:2] for i in range(2)] == [["a-done", "finished"], ["b-live", "running"]]
        await pilot.press("s")  # the finished run: nothing to stop
        assert "finished: nothing to stop" in text_of(app, "#runs-message")
        await pilot.press("down", "s")
        assert live.stop_requested()
        assert "stop asked" in text_of(app, "#runs-message")
        await pilot.press("up", "enter")
        shown(app, MonitorScreen)
        await wait_for(pilot, lambda: "a-done  FINISHED  step 2/2" in text_of(app, "#run-headline"))
        log_widget = app.screen.query_one("#event-log", RichLog)
        await wait_for(pilot, lambda: any("finished at step 2" in line.text for line in log_widget.lines))
    lock.release()


async def test_the_palette_reaches_every_screen_and_stops_the_attached_run(embedded_model, tmp_path) -> None:
    config = _config(tmp_path)
    run = create_run(config, SAMPLE / "train.jsonl")
    lock = RunnerLock(run)
    app = ForgeApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.monitor.run is not None)  # the live run is attached on start
        titles = {command.title: command for command in app.get_system_commands(app.screen)}
        assert {"Datasets", "Monitor", "Runs", f"Stop {run.name}"} <= set(titles)
        titles["Runs"].callback()
        await pilot.pause()
        shown(app, RunsScreen)
        titles[f"Stop {run.name}"].callback()
        assert run.stop_requested()
    lock.release()


def _finished_run(config: Config, name: str, losses: list[float], watts: float) -> Path:
    """A finished run's files as its runner leaves them: events, and a telemetry record at `watts`."""
    run = create_run(config, SAMPLE / "train.jsonl", Path(config.runs.dir) / name)
    recorder = RunRecorder(run.path / "telemetry.jsonl", "jtop")
    for second in range(0, 11, 2):
        sensor = Sensor("tj", 60.0 + second, (Trip("passive", 90.0),))
        recorder.add(Snapshot(time=1000.0 + second, source="jtop", sensors=(sensor,), power_total_watts=watts))
    recorder.close()
    log = ev.EventLog(run.events)
    log.emit(replace(_started(len(losses)), estimate_seconds=600.0, time=1000.0))
    for step, loss in enumerate(losses, start=1):
        log.emit(replace(_step(step, loss, total=len(losses)), time=1000.0 + step))
        log.emit(ev.Eval(step=step, eval_loss=loss + 0.1, eval_tokens=10, time=1000.0 + step))
    log.emit(ev.Finished(step=len(losses), adapter="x", train_loss=losses[-1], eval_loss=losses[-1] + 0.1, seconds=10.0,
                         peak_memory_bytes=1, time=1010.0))
    log.close()
    place_final_adapter(run.path)
    return run.path


async def test_two_runs_side_by_side_and_a_finished_runs_record(embedded_model, tmp_path) -> None:
    config = _config(tmp_path)
    _finished_run(config, "a-lr-low", [2.0, 1.8], watts=10.0)
    config_b = replace(config, train=replace(config.train, learning_rate=0.004))
    _finished_run(config_b, "b-lr-high", [2.0, 1.2], watts=20.0)
    app = ForgeApp(config)
    async with app.run_test(size=(160, 48)) as pilot:
        table = await runs_table(pilot, lambda table: table.row_count == 2)
        # 10 s at 10 W = 100 J = 0.03 Wh, 20 W: 0.06 Wh; lowest headroom 90 - 70 = 20 °C; 10 s against ~10 min
        assert table.get_row_at(0)[5:8] == ["0m10s ~10m", "0.03", "20.0"]
        assert table.get_row_at(1)[6] == "0.06"
        await pilot.press("c")
        assert "mark two or more runs" in text_of(app, "#runs-message")
        await pilot.press("m", "down", "space")  # m, or space in a terminal
        assert "2 marked: a-lr-low, b-lr-high" in text_of(app, "#runs-message")
        await pilot.press("c")
        screen = shown(app, SideBySideScreen)
        compared = screen.query_one("#sbs-table", DataTable)
        await wait_for(pilot, lambda: compared.row_count > 5)
        rows = {str(compared.get_row_at(i)[0]): [str(cell) for cell in compared.get_row_at(i)[1:]]
                for i in range(compared.row_count)}
        assert rows["train.learning_rate"] == ["0.0002", "0.004"]          # only what differs
        assert "train.max_steps" not in rows
        assert rows["energy"] == ["0.03 Wh, 0.50 J/token", "0.06 Wh, 1.00 J/token"]   # 100 J and 200 J over 200 tokens
        assert rows["time"] == ["0m10s (est. 10m00s)", "0m10s (est. 10m00s)"]
        assert rows["final eval loss"] == ["1.900", "1.300"]
        await pilot.press("escape")
        shown(app, RunsScreen)
        await pilot.press("enter")   # the marked b-lr-high is selected: attach it, its record shows
        shown(app, MonitorScreen)
        await wait_for(pilot, lambda: "energy 0.06 Wh" in text_of(app, "#run-figures"))
        assert "lowest headroom 20.0 °C (tj)" in text_of(app, "#run-figures")
