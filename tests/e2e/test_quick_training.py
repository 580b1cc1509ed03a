"""End to end on the real embedded model: the quick preset lowers the eval loss and the benchmark
runs on it; a detached runner outlives the terminal that started it."""

from __future__ import annotations

import json
import os
import pty
import sys
import time
from pathlib import Path

from forge_tui.engine.events import read_events
from tests.helpers import ROOT, SAMPLE, run_cli, wait_for_event


def test_quick_preset_lowers_eval_loss_on_the_sample_data(embedded_model, tmp_path) -> None:
    run = tmp_path / "quick"
    result = run_cli("train", "--preset", "quick", "--dataset", str(SAMPLE / "train.jsonl"), "--max-steps", "20",
                     "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    assert "lora on cpu (fp32)" in result.stdout
    evals = [e["eval_loss"] for e in read_events(run / "events.jsonl") if e["type"] == "eval"]
    assert len(evals) >= 2  # one before the first step, one at the end
    assert evals[-1] < 0.8 * evals[0], evals
    bench = run_cli("bench", str(run), "--limit", "4", "--json")  # eval/retention found beside train.jsonl
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    # the retention items are ones the base model answers correctly: the scorer must see that
    assert result["base"]["subscores"]["retention"] == 100.0
    assert result["tuned"]["subscores"]["perplexity"] > result["base"]["subscores"]["perplexity"]


def test_detached_runner_survives_the_terminal_hanging_up(tiny_config, tmp_path) -> None:
    run = tmp_path / "runs" / "detached"
    command = (f"cd {ROOT} && python -m forge_tui --config {tiny_config} train --run-dir {run} "
               f"--max-steps 300 --detach; sleep 60")
    pid, master = pty.fork()
    if pid == 0:  # the child: a shell in a new session whose controlling terminal is the pty
        os.execvpe("bash", ["bash", "-c", command], {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    wait_for_event(run, "step")
    os.close(master)                  # the terminal goes away: SIGHUP to its session
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    seen = max(e["step"] for e in read_events(run / "events.jsonl") if e["type"] == "step")
    wait_for_event(run, "step", lambda e: e["step"] >= seen + 3, timeout=120)
    states = {r["name"]: r["state"] for r in json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)}
    assert states["detached"] == "running"
    assert run_cli("--config", str(tiny_config), "stop", str(run)).returncode == 0
    wait_for_event(run, "stopped")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and states["detached"] != "stopped":
        states = {r["name"]: r["state"] for r in json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)}
        time.sleep(0.3)
    assert states["detached"] == "stopped"
