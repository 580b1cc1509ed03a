"""Pilot tests of the Fleet screen over a real fleet run directory written as the coordinator
writes it: nodes and rounds follow its events as they come; `l` starts a local fleet (the child
launch replaced: tests/fleet starts real ones), and `s` stops only a live supervisor."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable

from forge_tui.config import Config, RunsConfig
from forge_tui.engine import events as ev
from forge_tui.engine.children import Launched
from forge_tui.engine.runs import RunDir, create_run
from forge_tui.fleet import events as fe
from forge_tui.fleet.status import supervisor_pid_file
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.screens import fleet as fleet_screen
from forge_tui.ui.screens.fleet import FleetScreen
from tests.helpers import SAMPLE, shown, text_of, wait_for

NODE = 4_242_424_242_424_242
OTHER = 7_000_000_000_123_456   # a node of no folder here: shown by its short id


def _fleet_run(config: Config) -> RunDir:
    run = create_run(config, SAMPLE / "train.jsonl", Path(config.runs.dir) / "fleet-demo")
    (run.path / "fleet" / "app").mkdir(parents=True)
    (run.path / "nodes" / "node-1").mkdir(parents=True)
    (run.path / "nodes" / "node-1" / "node-id").write_text(str(NODE))
    return run


async def test_nodes_and_rounds_follow_the_coordinators_events(embedded_model, tmp_path) -> None:
    config = Config(runs=RunsConfig(dir=str(tmp_path / "runs")))
    run = _fleet_run(config)
    log = ev.EventLog(run.events)
    log.emit(fe.FleetStarted(rounds=2, min_nodes=1, steps_per_round=4, round_timeout=60.0))
    log.emit(fe.RoundStarted(round=1, rounds=2, nodes=[NODE, OTHER]))
    app = ForgeApp(config, dataset=SAMPLE / "train.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        shown(app, FleetScreen)
        await wait_for(pilot, lambda: "round 0/2" in text_of(app, "#fleet-headline"))
        log.emit(fe.UpdateReceived(round=1, node=NODE, examples=300, train_loss=1.25, eval_loss=1.5, headroom_c=22.0,
                                   bytes=2 * 2**20, sha256="0" * 64))
        log.emit(fe.NodeMissed(round=1, node=OTHER, reason="heat"))
        log.emit(fe.RoundDone(round=1, rounds=2, nodes=1, examples=300, train_loss=1.25, bytes_in=2 * 2**20, bytes_out=0,
                              sha256="1" * 64, seconds=30.0))
        log.emit(ev.Eval(step=1, eval_loss=1.4, eval_tokens=0))
        await wait_for(pilot, lambda: "round 1/2" in text_of(app, "#fleet-headline"))
        table = app.screen.query_one("#fleet-nodes", DataTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert ["node-1", "idle", "1", "300", "1.250", "22", "2.0 MiB"] in rows
        assert any(row[0] == "#123456" and row[1] == "paused by heat" for row in rows)
        assert "in 2.0 MiB" in text_of(app, "#fleet-headline")
        await pilot.press("s")
        await wait_for(pilot, lambda: "no local fleet runs this run here" in text_of(app, "#fleet-message"))
        supervisor_pid_file(run).write_text(str(2**22 + 12345))  # a pid file whose process is gone: not signalled
        await pilot.press("s")
        assert "no local fleet runs this run here" in text_of(app, "#fleet-message")


async def test_l_starts_a_local_fleet_on_the_picked_dataset_and_shows_it(embedded_model, tmp_path, monkeypatch) -> None:
    config = Config(runs=RunsConfig(dir=str(tmp_path / "runs")))
    asked: list[tuple[Path, str]] = []

    def start(config: Config, dataset: Path, split: str) -> Launched:
        asked.append((dataset, split))
        run = _fleet_run(config)
        ev.EventLog(run.events).emit(fe.FleetStarted(rounds=3, min_nodes=2, steps_per_round=5, round_timeout=600.0))
        return Launched(str(run.path), 4321)

    monkeypatch.setattr(fleet_screen, "start_local_fleet", start)
    app = ForgeApp(config, dataset=SAMPLE / "train.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await wait_for(pilot, lambda: "no fleet run yet" in text_of(app, "#fleet-headline"))
        await pilot.press("l")
        await wait_for(pilot, lambda: "local fleet started (pid 4321)" in text_of(app, "#fleet-message"))
        await wait_for(pilot, lambda: "fleet-demo" in text_of(app, "#fleet-headline"))
    assert asked == [(SAMPLE / "train.jsonl", "by-category")]  # the sample data's rows carry their category
    assert json.loads((SAMPLE / "train.jsonl").read_text().splitlines()[0])["category"]
