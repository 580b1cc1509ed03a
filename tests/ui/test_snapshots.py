"""Snapshots of every screen at 80x24 and 160x48 in each theme (pytest-textual-snapshot).

The console is set up to look the same on every machine: runs written with fixed times, telemetry
replayed from a recording slowed so that its first reading stays (the Monitor is taken once its
history graphs are full), times shown in UTC. The Train screen's dry run is replaced (a child
process whose memory figures are this machine's); the Datasets screen's check is the real child's
answer, asked once per dataset for the module.
Review a changed snapshot with the HTML report pytest prints; accept it with --snapshot-update.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.screen import Screen

from forge_tui.config import Config, RunsConfig, TelemetryConfig, UiConfig
from forge_tui.engine import events as ev
from forge_tui.engine.bench import BenchItem, Settings, summarise
from forge_tui.engine.eta import Estimate
from forge_tui.engine.plan import Plan
from forge_tui.engine.preflight import DatasetBrief, MemoryBrief, Preflight
from forge_tui.engine.runs import RunDir, create_run
from forge_tui.engine.telemetry.record import RunRecorder
from forge_tui.engine.telemetry.snapshot import Sensor, Snapshot, Throttle, Trip
from forge_tui.fleet import events as fe
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.benchview import item_scores
from forge_tui.ui.jobs import run_data_check
from forge_tui.ui.screens import chat as chat_screen
from forge_tui.ui.screens import datasets as datasets_screen
from forge_tui.ui.screens import train as train_screen
from forge_tui.ui.telemetry_view import HISTORY
from forge_tui.ui.themes import load_themes
from tests.fakes.chat_child import ScriptedChatChild
from tests.helpers import ROOT, SAMPLE, place_final_adapter

RECORDING = ROOT / "sample_data" / "telemetry" / "orin-agx-training.jsonl"
T0 = 1_790_000_000.0
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
SCREENS = ("datasets", "train", "monitor", "compare", "runs", "chat", "fleet", "help")
DRY_RUN = Preflight(ok=True, problems=[], plan=Plan("cuda", quantized=True, dtype="bf16", checkpointing=True, compiled=True),
                    memory=MemoryBrief("ok", 9 * 2**30, 52 * 2**30, ""),
                    dataset=DatasetBrief("", 623, 0, {"train": 570, "eval": 53}),
                    eta=Estimate(seconds=660.0, parts={"load": 2.0, "steps": 600.0, "evals": 58.0}, measured=False))
ANSWERS = [  # (question, reference, fact, base answer, tuned answer, base scores, tuned scores)
    ("What turbidity triggers a filter backwash?", "Backwash when turbidity exceeds 0.3 NTU.", "0.3 NTU",
     "Filters are cleaned regularly.", "Backwash when turbidity exceeds 0.3 NTU.",
     {"facts": 0.0, "similarity": 0.2, "nll_sum": 30.0, "nll_tokens": 10},
     {"facts": 1.0, "similarity": 0.9, "nll_sum": 4.0, "nll_tokens": 10}),
    ("How long is the chlorine contact time?", "At least 30 minutes of contact time.", "30 minutes",
     "About 30 minutes.", "Contact time is 45 minutes.",
     {"facts": 1.0, "similarity": 0.4, "nll_sum": 12.0, "nll_tokens": 8},
     {"facts": 0.0, "similarity": 0.3, "nll_sum": 10.0, "nll_tokens": 8}),
    ("What is the capital of France?", "Paris.", "Paris", "Paris.", "Paris.",
     {"correct": 1.0}, {"correct": 1.0}),
]


def _write(run: RunDir, events: list[ev.Event]) -> None:
    with run.events.open("a", encoding="utf-8") as log:
        for number, event in enumerate(events):
            log.write(json.dumps(replace(event, time=T0 + 10 * number).to_json()) + "\n")


def _trained(run: RunDir) -> list[ev.Event]:
    steps = [ev.Step(step=s, total_steps=40, epoch=s / 20, loss=2.6 * 0.93**s + 0.4, lr=1e-3, tokens=900,
                     tokens_per_second=118.0, eta_seconds=(40 - s) * 7.5) for s in range(1, 41)]
    evals = [ev.Eval(step=s, eval_loss=2.5 * 0.95**s + 0.6, eval_tokens=4000) for s in (0, 20, 40)]
    return [ev.RunStarted(run=run.name, mode="lora", device="cpu", precision="fp32", model="smollm2-135m-instruct",
                          total_steps=40, start_step=0, train_samples=570, eval_samples=53, effective_batch=8,
                          threads=2, trainable_parameters=4_884_480, memory_estimate_bytes=5 * 2**30,
                          memory_available_bytes=22 * 2**30, setup_seconds=20.0, estimate_seconds=600.0),
            evals[0], *steps[:20], evals[1], ev.Checkpoint(step=20, path=str(run.checkpoints / "step-20"), seconds=1.0),
            *steps[20:], evals[2], ev.Finished(step=40, adapter=str(run.adapter), train_loss=0.52, eval_loss=0.71,
                                                seconds=300.0, peak_memory_bytes=3 * 2**30)]


def _benchmarked(run: RunDir) -> list[ev.Event]:
    items = [BenchItem(id=f"item-{i}", category="water" if i < 2 else "general", kind="eval" if i < 2 else "retention",
                       prompt=(), reference=a[1], facts=(a[2],)) for i, a in enumerate(ANSWERS)]
    records = [ev.BenchItem(id=item.id, category=item.category, kind=item.kind, question=a[0], reference=a[1], facts=[a[2]],
                            base={"answer": a[3], **a[5]}, tuned={"answer": a[4], **a[6]}) for item, a in zip(items, ANSWERS, strict=True)]
    result = summarise(items, [item_scores(a[5]) for a in ANSWERS], [item_scores(a[6]) for a in ANSWERS], Settings(48, 16, 200, 0))
    (run.path / "bench").mkdir()
    path = run.path / "bench" / "result.json"
    path.write_text(json.dumps({"run": run.name, **result, "items": [r.to_json() for r in records]}))
    return [ev.BenchStarted(items=3, eval_file="eval.jsonl", retention_file="retention.jsonl"), *records,
            ev.BenchProgress(done=3, total=3, seconds=42.0),
            ev.BenchResult(base=result["base"]["composite"], tuned=result["tuned"]["composite"], delta=result["delta"]["composite"],
                           ci95=result["ci95"]["delta"], result=str(path), seconds=42.0)]


NODES = (11_111_111_111_111_111_111, 22_222_222_222_222_222_222, 3_333_333_333_333_333_333)


def _fleet(run: RunDir) -> list[ev.Event]:
    """Three nodes, three rounds; node-3 too hot for the last one."""
    (run.path / "fleet" / "app").mkdir(parents=True)
    for index, node in enumerate(NODES, start=1):
        (run.path / "nodes" / f"node-{index}").mkdir(parents=True)
        (run.path / "nodes" / f"node-{index}" / "node-id").write_text(str(node))
    events: list[ev.Event] = [fe.FleetStarted(rounds=3, min_nodes=2, steps_per_round=5, round_timeout=600.0),
                              ev.Eval(step=0, eval_loss=3.2, eval_tokens=0)]
    for number in (1, 2, 3):
        delivered = NODES if number < 3 else NODES[:2]
        events.append(fe.RoundStarted(round=number, rounds=3, nodes=list(NODES)))
        events += [fe.UpdateReceived(round=number, node=node, examples=180 + 20 * i, train_loss=2.4 - 0.5 * number + 0.1 * i,
                                     eval_loss=2.6 - 0.5 * number, headroom_c=31.5 - 4 * i, bytes=19_000_000, sha256="0" * 64)
                   for i, node in enumerate(delivered)]
        if number == 3:
            events.append(fe.NodeMissed(round=3, node=NODES[2], reason="heat"))
        events += [fe.RoundDone(round=number, rounds=3, nodes=len(delivered), examples=600, train_loss=2.5 - 0.5 * number,
                                bytes_in=19_000_000 * len(delivered), bytes_out=0 if number == 1 else 57_000_000, sha256="1" * 64,
                                seconds=300.0),
                   ev.Eval(step=number, eval_loss=3.2 - 0.6 * number, eval_tokens=0)]
    return [*events, ev.Finished(step=3, adapter=str(run.adapter), train_loss=1.0, eval_loss=1.4, seconds=900.0, peak_memory_bytes=0)]


def _record(run: RunDir) -> None:
    """The run's thermal and energy record as its sampler writes it: a Jetson warming under load."""
    recorder = RunRecorder(run.path / "telemetry.jsonl", "jtop")
    for minute in range(11):
        sensors = (Sensor("tj", 62.0 + minute, (Trip("passive", 99.0),)), Sensor("gpu", 60.0 + minute, (Trip("passive", 99.0),)))
        recorder.add(Snapshot(time=T0 + 60.0 * minute, source="jtop", sensors=sensors, power_total_watts=24.0 + minute % 3,
                              throttle=Throttle(False)))
    recorder.close()


@pytest.fixture(scope="module")
def console_home(embedded_model, tmp_path_factory) -> Config:
    os.environ["TZ"] = "UTC"
    time.tzset()
    home = tmp_path_factory.mktemp("console")
    config = Config(runs=RunsConfig(dir=str(home / "runs")),
                    telemetry=TelemetryConfig(source=f"replay:{RECORDING}", interval=0.05, replay_speed=0.001))
    done = create_run(config, SAMPLE / "train.jsonl", home / "runs" / "20260901-0800-quick")
    _write(done, _trained(done) + _benchmarked(done))
    _record(done)
    place_final_adapter(done.path)
    stopped = create_run(config, SAMPLE / "train.jsonl", home / "runs" / "20260902-0900-standard")
    _write(stopped, [*_trained(stopped)[:12], ev.Stopped(step=10, checkpoint=str(stopped.checkpoints / "step-10"))])
    fleet = create_run(config, SAMPLE / "train.jsonl", home / "runs" / "20260830-0700-fleet")
    _write(fleet, _fleet(fleet))
    place_final_adapter(fleet.path)
    return config


def _ready(app: ForgeApp, screen: str):
    """Put the app on `screen` and wait until everything it shows has arrived."""
    def shows(selector: str, text: str, screen: Screen[Any] | None = None) -> bool:
        try:
            return text in str((screen or app.screen).query_one(selector).render())
        except Exception:  # noqa: BLE001 - not composed yet
            return False

    def shown_under(selector: str, text: str) -> bool:
        """On the screen under a modal one (help over Datasets)."""
        return len(app.screen_stack) > 1 and shows(selector, text, app.screen_stack[-2])

    ready = {
        "datasets": lambda: shows("#check", "samples"),
        "train": lambda: shows("#train-plan", "memory"),
        "monitor": lambda: (shows("#run-headline", "FINISHED") and shows("#run-figures", "lowest headroom")
                            and len(app.monitor.history.headroom) == HISTORY),
        "compare": lambda: shows("#bench-interval", "95% CI"),
        "runs": lambda: _rows(app, "#runs-table") == 3,
        "fleet": lambda: shows("#fleet-headline", "FINISHED") and _rows(app, "#fleet-nodes") == 3,
        "chat": lambda: shows("#chat-tuned", "tokens") and shows("#chat-base", "tokens"),
        "help": lambda: type(app.screen).__name__ == "HelpScreen" and shown_under("#check", "samples"),
    }[screen]

    async def run_before(pilot) -> None:
        run = RunDir(Path(app.config.runs.dir) / "20260901-0800-quick")
        if screen == "monitor":
            app.attach(run)
        elif screen == "compare":
            app.compare(run)
        elif screen == "chat":
            await pilot.press("6")
            await _chat(pilot, app)
        else:
            await pilot.press({"datasets": "1", "train": "2", "runs": "5", "fleet": "7", "help": "question_mark"}[screen])
        for _ in range(600):
            if ready():
                break
            await pilot.pause(0.05)
        else:
            raise AssertionError(f"{screen} never got ready")
        await pilot.pause(0.3)

    return run_before


async def _chat(pilot, app: ForgeApp) -> None:
    """A question asked of the scripted child once it is ready."""
    from textual.widgets import Input

    for _ in range(200):
        if "loaded in" in str(app.screen.query_one("#chat-status").render()):
            break
        await pilot.pause(0.05)
    app.screen.query_one("#chat-question", Input).value = "When is a pressure-reducing valve serviced?"
    await pilot.press("enter")


def _rows(app: ForgeApp, table: str) -> int:
    from textual.widgets import DataTable

    try:
        return app.screen.query_one(table, DataTable).row_count
    except Exception:  # noqa: BLE001 - not composed yet
        return -1


@pytest.fixture(scope="module")
def checked() -> Callable[[Config, Path, dict[str, str]], dict[str, Any]]:
    """The Datasets screen's check, each dataset's run once for the module in the real child process
    (the 36 snapshots would otherwise start 36 children that load the tokenizer)."""
    reports: dict[Path, dict[str, Any]] = {}

    def check(config: Config, path: Path, columns: dict[str, str]) -> dict[str, Any]:
        if path not in reports:
            reports[path] = run_data_check(config, path, columns)
        return reports[path]

    return check


@pytest.mark.parametrize("theme", [theme.name for theme in load_themes()])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_screen(screen: str, size: str, theme: str, console_home: Config, checked, snap_compare, monkeypatch) -> None:
    monkeypatch.setattr(train_screen, "preflight", lambda *args: DRY_RUN)
    monkeypatch.setattr(train_screen, "device_preset", lambda: ("quick", "chosen for this machine (no GPU)"))
    monkeypatch.setattr(datasets_screen, "run_data_check", checked)
    monkeypatch.setattr(chat_screen, "ChatChild", ScriptedChatChild)
    app = ForgeApp(replace(console_home, ui=UiConfig(theme=theme)), dataset=SAMPLE / "train.jsonl")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_ready(app, screen))
