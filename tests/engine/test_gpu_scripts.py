"""The GPU scripts of issue 19, run on this CPU with the tiny shape so they are known to work before a
GPU session spends its minutes on them: the whole CLI end to end (train, kill -9, resume, bench,
exports, a telemetry recording), and the throughput harness with its peers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The script on the CPU, also on a machine with a GPU (the CPU path is what is checked here)."""
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=900, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})


def test_the_end_to_end_script_kills_resumes_benches_and_exports(embedded_model: Path, tmp_path: Path) -> None:
    done = _script("cuda_e2e.py", "--shape", "tiny", "--steps", "6", "--bench-limit", "2", "--work", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["killed_mid_run"]
    assert summary["resumed_exit"] == 0
    killed, resumed = summary["segments"]
    assert killed["peak_memory_gib"] is None  # killed: it never finished
    assert resumed["from_step"] <= killed["to_step"] + 1
    assert resumed["to_step"] == 6 == summary["finished_steps"]
    assert resumed["peak_memory_gib"] > 0
    assert resumed["memory_estimate_gib"] > 0
    assert summary["bench"]["base"] is not None
    assert summary["bench"]["tuned"] is not None
    assert summary["merged_export"]
    assert summary["gguf_export"]
    assert summary["telemetry_rows"] > 0
    assert (tmp_path / "model.gguf").read_bytes()[:4] == b"GGUF"


def test_the_throughput_harness_reports_ratio_and_refuses_unsloth_without_cuda() -> None:
    done = _script("train_throughput.py", "--shape", "tiny", "--samples", "16", "--median", "64", "--cap", "128",
                   "--rounds", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["peer"] == "baseline"
    assert summary["engine"]["tok_s"] > 0
    assert summary["peer_figures"]["tok_s"] > 0
    assert summary["ratio"] == pytest.approx(summary["engine"]["tok_s"] / summary["peer_figures"]["tok_s"], abs=0.002)
    assert summary["engine"]["mfu"] is None  # no known peak for a CPU
    refused = _script("train_throughput.py", "--shape", "tiny", "--peer", "unsloth")
    assert refused.returncode == 2
    assert "needs a CUDA GPU" in refused.stderr
