"""End to end on the real embedded model: the quick preset lowers the eval loss, the benchmark, the
exports and a chat run on it, all without a network; a detached runner outlives the terminal that started it."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forge_tui.engine.events import read_events
from tests.helpers import ROOT, SAMPLE, run_cli, wait_for_event

QUICK_STEPS = 10  # the eval loss is under 70% of its start by step 8 (3.22 -> 2.21, measured)


def _offline(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`forge-tui ARGS` inside a network namespace with no interface but loopback."""
    return subprocess.run(["unshare", "-rn", sys.executable, "-m", "forge_tui", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)


def test_the_quick_pipeline_learns_and_needs_no_network(embedded_model, tmp_path) -> None:
    """The quick preset on the real model lowers the eval loss; the benchmark scores it; the exports
    write a merged model and a GGUF adapter; chat answers with both models; all of it inside a
    network namespace that has no network, and the audit trail records no refused connection."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed for this test")
    probe = subprocess.run(["unshare", "-rn", sys.executable, "-c", "import socket; socket.socket().connect(('1.1.1.1', 80))"],
                           capture_output=True, text=True, check=False)
    assert "Network is unreachable" in probe.stderr  # the namespace really has no network
    run, config = tmp_path / "quick", tmp_path / "short-answers.toml"
    config.write_text("[bench]\nmax_new_tokens = 16\n")
    trained = _offline(config, "train", "--preset", "quick", "--dataset", str(SAMPLE / "train.jsonl"),
                       "--max-steps", str(QUICK_STEPS), "--run-dir", str(run))
    assert trained.returncode == 0, trained.stderr
    assert "lora on cpu (fp32)" in trained.stdout
    evals = [e["eval_loss"] for e in read_events(run / "events.jsonl") if e["type"] == "eval"]
    assert len(evals) >= 2  # one before the first step, one at the end
    assert evals[-1] < 0.8 * evals[0], evals

    bench = _offline(config, "bench", str(run), "--limit", "4", "--json")  # eval/retention found beside train.jsonl
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    # the retention items are ones the base model answers correctly: the scorer must see that
    assert result["base"]["subscores"]["retention"] == 100.0
    assert result["tuned"]["subscores"]["perplexity"] > result["base"]["subscores"]["perplexity"]

    exported = _offline(config, "export", str(run), "--merged", str(tmp_path / "merged"))
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    adapter = _offline(config, "export", str(run), "--gguf-adapter", str(tmp_path / "adapter.gguf"))
    assert adapter.returncode == 0, adapter.stderr

    chatted = _offline(config, "chat", str(run), "--once", "How often is a pressure-reducing valve serviced?", "--json",
                       "--max-new-tokens", "24")
    assert chatted.returncode == 0, chatted.stderr
    answers = json.loads(chatted.stdout)
    for side in ("base", "tuned"):
        assert answers[side]["answer"].strip()
        assert 0 < answers[side]["first_token_seconds"] <= answers[side]["seconds"]
        assert 0 < answers[side]["tokens"] <= 24
    assert answers["base"]["answer"] != answers["tuned"]["answer"]
    kinds = [json.loads(line)["kind"] for line in (run / "audit.jsonl").read_text().splitlines()]
    assert kinds[:2] == ["run_created", "runner_started"]
    assert "egress_refused" not in kinds
    assert kinds[-3:] == ["benchmark", "export", "export"]


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
