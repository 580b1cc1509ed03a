"""Every way a child process can fail the console, and the console staying usable after each.

The seam is the argv that starts `forge-tui` children (`jobs.forge_argv`): here it starts a small
script that misbehaves as asked (exits non-zero, says nothing, prints something that is not JSON,
is killed mid-way, refuses with an error record, answers with the wrong shape). Each screen that
starts a child must say what happened and take the next key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button

from forge_tui.config import Config, RunsConfig
from forge_tui.engine import events as ev
from forge_tui.engine.children import Launched
from forge_tui.engine.plan import Plan
from forge_tui.engine.preflight import DatasetBrief, MemoryBrief, Preflight
from forge_tui.engine.runs import RunDir
from forge_tui.ui import jobs
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.base import Console
from forge_tui.ui.jobs import ChildFailed
from forge_tui.ui.screens.compare import CompareScreen
from forge_tui.ui.screens.train import DETACHED_NOTE, TrainScreen
from tests.helpers import SAMPLE, runs_table, shown, text_of, wait_for

CHILD = """
import json, os, signal, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CHILD_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if "--dry-run" in args:
    print(os.environ["FAKE_PREFLIGHT"])
    sys.exit(0)
mode = os.environ["FAKE_CHILD"]
if mode == "exit":
    print("forge-tui: error: no space left on the device", file=sys.stderr)
    sys.exit(1)
if mode == "empty":
    sys.exit(0)
if mode == "garbage":
    print("Traceback (most recent call last): something broke")
    sys.exit(1)
if mode == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "refused":
    print(json.dumps({"error": "the run is busy", "exit_code": 2}))
    sys.exit(2)
if mode == "shape":
    print(json.dumps({"run": "somewhere"}))
    sys.exit(0)
if mode == "launched":
    print(json.dumps({"run": os.environ["FAKE_RUN"], "pid": 4242}))
"""

# (mode, what the operator reads)
FAILURES = [
    ("exit", "exited with 1 without an answer: no space left on the device"),
    ("empty", "exited with 0 without an answer"),
    ("garbage", "the answer is not a JSON object (exit 1): Traceback (most recent call last): something broke"),
    ("killed", "the process was killed (SIGKILL) before it answered"),
    ("refused", "the run is busy"),
    ("shape", "an answer of the wrong shape (KeyError: 'pid')"),
]


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Children run the CHILD script; `child(mode)` sets how the next ones misbehave; `child.calls()`
    lists the argument lists they were started with."""
    log = tmp_path / "children.log"
    log.touch()
    monkeypatch.setattr(jobs, "forge_argv", lambda config_file, *args: [sys.executable, "-c", CHILD, *args])
    monkeypatch.setenv("FAKE_CHILD_LOG", str(log))
    monkeypatch.setenv("FAKE_RUN", str(tmp_path / "runs" / "new"))
    preflight = Preflight(ok=True, problems=[], dataset=DatasetBrief("d", 96, 0, {"train": 86, "eval": 10}),
                          plan=Plan("cpu", False, "fp32", False), memory=MemoryBrief("ok", 2**30, 8 * 2**30, "fits"))
    monkeypatch.setenv("FAKE_PREFLIGHT", json.dumps(preflight.to_json()))

    class Child:
        def __call__(self, mode: str) -> None:
            monkeypatch.setenv("FAKE_CHILD", mode)

        def calls(self) -> list[list[str]]:
            return [line.split() for line in log.read_text().splitlines()]

    return Child()


# --------------------------------------------------------------------------- the jobs layer


@pytest.mark.parametrize(("mode", "said"), FAILURES)
def test_each_failure_is_one_exception_saying_what_happened(child, mode: str, said: str) -> None:
    child(mode)
    with pytest.raises(ChildFailed) as failed:
        jobs.resume_run(Config(), Path("/runs/r"))
    assert said in str(failed.value)
    assert child.calls() == [["resume", "/runs/r", "--detach", "--json"]]


def test_an_answer_is_read_as_its_record(child, tmp_path: Path) -> None:
    child("launched")
    assert jobs.resume_run(Config(), Path("/runs/r")) == Launched(str(tmp_path / "runs" / "new"), 4242)
    assert jobs.preflight(Config(), SAMPLE / "train.jsonl", "quick", []).plan == Plan("cpu", False, "fp32", False)


# --------------------------------------------------------------------------- the screens


def test_the_app_offers_what_the_screens_ask_of_it() -> None:
    console: Console = ForgeApp(Config())  # mypy checks the shape; isinstance checks the members exist
    assert isinstance(console, Console)
    assert console.attached_run() is None
    assert console.telemetry() == (None, None)


class RecordingApp(ForgeApp):
    """The console, keeping what it told the operator in notifications."""

    told: list[str]

    def notify(self, message: str, **options: Any) -> None:
        self.told = [*getattr(self, "told", []), message]
        super().notify(message, **options)


def _config(tmp_path: Path) -> Config:
    return Config(runs=RunsConfig(dir=str(tmp_path / "runs")))


def _stopped_run(tmp_path: Path) -> RunDir:
    """A run directory as a stopped run leaves it (no model needed to read it)."""
    path = tmp_path / "runs" / "old"
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"name": "old", "created": 1.0, "preset": "quick"}))
    log = ev.EventLog(path / "events.jsonl")
    log.emit(ev.Stopped(step=2, checkpoint=str(path / "checkpoints" / "step-000002")))
    log.close()
    return RunDir(path)


@pytest.mark.parametrize(("mode", "said"), FAILURES)
async def test_a_failed_launch_says_why_and_the_launch_key_works_again(child, tmp_path, mode: str, said: str) -> None:
    child(mode)
    app = ForgeApp(_config(tmp_path), dataset=SAMPLE / "train.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        screen = shown(app, TrainScreen)
        await wait_for(pilot, lambda: "device cpu" in text_of(app, "#train-plan"))
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: "launch refused" in text_of(app, "#train-problems"))
        assert said in text_of(app, "#train-problems")
        assert not screen.launching
        assert not screen.query_one("#launch", Button).disabled
        assert text_of(app, "#train-note") == DETACHED_NOTE
        await pilot.press("ctrl+l")  # and again: the key is not dead
        await wait_for(pilot, lambda: sum("--detach" in call for call in child.calls()) == 2)


async def test_a_check_that_dies_is_shown_on_the_dataset(child, tmp_path) -> None:
    child("killed")
    app = ForgeApp(_config(tmp_path), dataset=SAMPLE / "eval.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "check failed" in text_of(app, "#check"))
        assert "the dataset check: the process was killed (SIGKILL)" in text_of(app, "#check")
        child("garbage")
        await pilot.press("r")  # re-check
        await wait_for(pilot, lambda: "the answer is not a JSON object" in text_of(app, "#check"))


async def test_runs_says_why_a_resume_was_refused_and_goes_on(child, tmp_path) -> None:
    run = _stopped_run(tmp_path)
    child("refused")
    app = ForgeApp(_config(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await runs_table(pilot, lambda table: table.row_count == 1)
        await pilot.press("r")
        await wait_for(pilot, lambda: "old not resumed: the run is busy" in text_of(app, "#runs-message"))
        await pilot.press("e")
        await wait_for(pilot, lambda: "only a finished run can be exported" in text_of(app, "#runs-message"))
        child("launched")
        await pilot.press("r")
        await wait_for(pilot, lambda: "old resumed in its own process (pid 4242)" in text_of(app, "#runs-message"))
        assert [call[:2] for call in child.calls() if call[0] == "resume"] == [["resume", str(run.path)]] * 2


async def test_compare_says_why_a_benchmark_did_not_start(child, tmp_path) -> None:
    run = _stopped_run(tmp_path)
    child("killed")
    app = ForgeApp(_config(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        app.compare(run)
        await pilot.pause()
        shown(app, CompareScreen)
        await pilot.press("b")
        await wait_for(pilot, lambda: "benchmark refused: the benchmark: the process was killed" in text_of(app, "#bench-headline"))
        child("refused")
        await pilot.press("b")
        await wait_for(pilot, lambda: "benchmark refused: the run is busy" in text_of(app, "#bench-headline"))


async def test_an_answer_the_screen_cannot_show_still_settles_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("forge_tui.ui.screens.datasets.run_data_check", lambda *_args: {"ok": True})  # no summary
    app = ForgeApp(_config(tmp_path), dataset=SAMPLE / "eval.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "check failed" in text_of(app, "#check"))
        assert "KeyError" in text_of(app, "#check")


async def test_an_unexpected_error_is_notified_logged_and_the_screen_settles(monkeypatch, tmp_path) -> None:
    def broken(*_args: object) -> dict[str, Any]:
        raise RuntimeError("the parser fell over")

    monkeypatch.setattr("forge_tui.ui.screens.datasets.run_data_check", broken)
    monkeypatch.setenv("FORGE_TUI_LOG_DIR", str(tmp_path / "log"))
    app = RecordingApp(_config(tmp_path), dataset=SAMPLE / "eval.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "check failed" in text_of(app, "#check"))
        assert "RuntimeError: the parser fell over" in text_of(app, "#check")
        await wait_for(pilot, lambda: any("the dataset check failed" in note for note in getattr(app, "told", [])))
        note = next(note for note in app.told if "the dataset check failed" in note)
        assert "RuntimeError: the parser fell over" in note
        assert str(tmp_path / "log" / "console.log") in note
        await pilot.press("2")  # the console goes on
        shown(app, TrainScreen)
    logged = (tmp_path / "log" / "console.log").read_text()
    assert "the dataset check failed" in logged
    assert "Traceback" in logged
    assert 'raise RuntimeError("the parser fell over")' in logged
