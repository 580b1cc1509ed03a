"""Pilot tests of Train and Compare over a tiny real model: the form checked as it is typed, a dataset
with errors refused, a launch that starts a detached runner and follows it to the end, then a
benchmark started from Compare that fills the table as results arrive, an answer corrected there, and the
run exported from Runs (merged, and its adapter as GGUF)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from textual.widgets import Button, DataTable, Input, TextArea

from forge_tui.config import load_config
from forge_tui.engine.corrections import corrections_folder
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.benchview import verdict
from forge_tui.ui.screens.compare import CompareScreen
from forge_tui.ui.screens.correction import CorrectionScreen
from forge_tui.ui.screens.monitor import MonitorScreen
from forge_tui.ui.screens.train import TrainScreen
from tests.helpers import ROOT, SAMPLE, runs_table, shown, text_of, wait_for

REPLAY = ROOT / "sample_data" / "telemetry" / "orin-agx-training.jsonl"


def _console_config(tiny_config: Path) -> Path:
    """The tiny run, short answers in the benchmark, replayed telemetry."""
    with tiny_config.open("a", encoding="utf-8") as handle:
        handle.write(f'[bench]\nmax_new_tokens = 8\nbatch_size = 64\n[telemetry]\nsource = "replay:{REPLAY}"\nreplay_speed = 20.0\n')
    return tiny_config


async def test_the_form_marks_bad_values_and_a_dataset_with_errors_cannot_launch(tiny_config, write, tmp_path) -> None:
    bad = write("bad.jsonl", '{"prompt": "p", "completion": "c"}\n{oops\n')
    app = ForgeApp(load_config(_console_config(tiny_config)), dataset=bad)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        shown(app, TrainScreen)
        await wait_for(pilot, lambda: f"{bad}:2: malformed JSON" in text_of(app, "#train-problems"), tries=600)
        assert app.screen.query_one("#launch", Button).disabled
        await pilot.press("ctrl+l")
        await pilot.pause(0.5)
        assert not (tmp_path / "runs").exists()
        shown(app, TrainScreen)
        app.screen.query_one("#f-lora-r", Input).value = "0"
        await wait_for(pilot, lambda: "LoRA rank: must be between 1 and 1024, got 0" in text_of(app, "#train-problems"))
        assert app.screen.query_one("#f-lora-r").parent.has_class("invalid")
        await pilot.press("ctrl+r")  # back to the preset's values
        await wait_for(pilot, lambda: "LoRA rank" not in text_of(app, "#train-problems"))
        assert app.screen.query_one("#f-lora-r", Input).value == "4"


async def test_launch_follow_to_the_end_then_benchmark_from_compare(tiny_config, tmp_path) -> None:
    config = load_config(_console_config(tiny_config))
    data = Path(config.train.dataset)
    for name in ("eval.jsonl", "retention.jsonl"):  # the sets the benchmark finds beside the training data
        shutil.copy(SAMPLE / name, data.parent / name)
    app = ForgeApp(config, dataset=data)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: "device cpu" in text_of(app, "#train-plan"), tries=600)
        assert "memory" in text_of(app, "#train-plan")
        assert "96 samples" in text_of(app, "#train-plan")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: app.screen.is_mounted and isinstance(app.screen, MonitorScreen), tries=600)
        await wait_for(pilot, lambda: "FINISHED  step 8/8" in text_of(app, "#run-headline"), tries=2400)
        assert len(app.monitor.view.losses) == 8
        assert app.monitor.view.evals
        run = app.monitor.run

        await pilot.press("4")
        shown(app, CompareScreen)
        await wait_for(pilot, lambda: "no benchmark yet" in text_of(app, "#bench-headline"))
        await pilot.press("b")
        await wait_for(pilot, lambda: "benchmark of 113 items" in text_of(app, "#bench-headline"), tries=3600)
        result = json.loads((run.path / "bench" / "result.json").read_text())
        summary = app.screen.query_one("#bench-summary", DataTable)
        assert summary.get_row_at(0) == ["composite", f"{result['base']['composite']:.1f}",
                                         f"{result['tuned']['composite']:.1f}", f"{result['delta']['composite']:+.1f}"]
        assert "95% CI" in text_of(app, "#bench-interval")
        items = app.screen.query_one("#bench-items", DataTable)
        assert items.row_count == 113
        assert result["items"][0]["question"] in text_of(app, "#bench-question")
        await pilot.press("c")  # the highlighted item's tuned answer, corrected into the corrections dataset
        await wait_for(pilot, lambda: isinstance(app.screen, CorrectionScreen))
        app.screen.query_one(TextArea).text = "Pump P-101 feeds it."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        corrected = json.loads((corrections_folder(config) / "corrections.jsonl").read_text().splitlines()[-1])
        assert corrected["messages"][-1]["content"] == "Pump P-101 feeds it."
        assert corrected["provenance"]["origin"].startswith("benchmark item ")
        await pilot.press("f")
        assert items.row_count == sum(verdict(item) == "improved" for item in result["items"])
        assert "filter: improved" in text_of(app, "#bench-headline")

        table = await runs_table(pilot, lambda table: table.row_count == 1 and "bench" in table.get_row_at(0)[-1])
        assert table.get_row_at(0)[:2] == [run.name, "finished"]
        await pilot.press("e")  # export: a merged model beside the run
        await wait_for(pilot, lambda: "merged model written to" in text_of(app, "#runs-message"), tries=2400)
        assert (run.path / "merged" / "config.json").is_file()
        await pilot.press("g", "down", "down", "down", "enter")  # GGUF: the adapter alone
        await wait_for(pilot, lambda: "GGUF adapter written to" in text_of(app, "#runs-message"), tries=2400)
        assert (run.path / "gguf" / f"{run.name}-adapter.gguf").is_file()
        assert not app.screen.query_one("#runs-progress").display
