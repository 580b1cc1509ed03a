"""The product end to end on one device, as an operator runs it: train, kill -9, resume, bench, export.

    python benchmarks/cuda_e2e.py [--shape llama2-7b|tiny] [--steps N] [--compile on|off] [--work DIR]
                                  [--record FILE] [--bench-limit N] [--tokenizer DIR]

Builds a model of the shape with random weights (no download; the embedded model's tokenizer), then,
all through the `forge-tui` CLI with the orin-7b preset shortened to N steps (checkpoint and eval every
N/4, rehearsal on): `train` (compiled on CUDA), kill -9 of its whole process group once it is past
half way, `resume` to the end, `bench --limit 20`, `export --merged` and `export --gguf`. While it
trains, `telemetry --record` writes the device's readings (NVML on a desktop GPU) to a recording.
On CUDA: 4-bit NF4, bf16, checkpointed activations. On a CPU (the suite runs it on the tiny shape):
fp32 LoRA, which proves the script, not the GPU. Prints each figure: compile (first step) time, steps/s
before the kill and after the resume, peak memory against the estimate, bench composites, export
times. The last line is one JSON object; exit 1 when a stage failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sample_data" / "waterworks"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from shapes import save_model_with_tokenizer  # noqa: E402


def config_text(model_dir: Path, runs: Path, cuda: bool, steps: int, compile_: str) -> str:
    every = max(2, steps // 4)
    device = ('device = "cuda"\nquantization = "nf4"\ncompute_dtype = "bf16"\n' if cuda
              else 'device = "cpu"\nquantization = "none"\ncompute_dtype = "auto"\n')
    return (f'[model]\nname = "{model_dir}"\n{device}gradient_checkpointing = "on"\ncompile = "{compile_}"\n'
            f'[data]\nrehearsal = "general"\n[train]\nmax_steps = {steps}\neval_every = {every}\nsave_every = {every}\n'
            f'[runs]\ndir = "{runs}"\n')


class Cli:
    """`forge-tui` with this benchmark's config, each call timed."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.seconds: dict[str, float] = {}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "forge_tui", "--config", str(self.config), *args]

    def run(self, stage: str, *args: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(self.argv(*args), cwd=ROOT, capture_output=True, text=True, check=False)
        self.seconds[stage] = round(time.monotonic() - started, 1)
        print(f"{stage}: exit {done.returncode} in {self.seconds[stage]} s", flush=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
        return done


def events(run: Path) -> list[dict[str, Any]]:
    """The run's events so far (a line torn by the kill, or being written, is skipped)."""
    from forge_tui.engine.events import read_events

    return [dict(e) for e in read_events(run / "events.jsonl")]


def last_step(run: Path) -> int:
    return max((e["step"] for e in events(run) if e["type"] == "step"), default=0)


def train_then_kill(cli: Cli, run: Path, kill_after: int, timeout: float) -> bool:
    """`train` until its steps pass `kill_after`, then SIGKILL its whole process group (the runner
    and any child); True when it was killed mid-run as meant."""
    started = time.monotonic()
    process = subprocess.Popen(cli.argv("train", "--dataset", str(DATA / "train.jsonl"), "--run-dir", str(run)),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while process.poll() is None and time.monotonic() - started < timeout:
        if last_step(run) > kill_after:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            cli.seconds["train until kill -9"] = round(time.monotonic() - started, 1)
            print(f"train: killed (kill -9) at step {last_step(run)}", flush=True)
            return True
        time.sleep(0.2)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    return False


def segments(run: Path) -> list[list[dict[str, Any]]]:
    """The run's events split at each `run_started`: the killed segment, then the resumed one."""
    found: list[list[dict[str, Any]]] = []
    for event in events(run):
        if event["type"] == "run_started":
            found.append([])
        if found:
            found[-1].append(event)
    return found


def segment_figures(segment: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [e for e in segment if e["type"] == "step"]
    started = segment[0]
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(steps)]
    finished = next((e for e in segment if e["type"] == "finished"), {})
    return {"from_step": steps[0]["step"] if steps else None, "to_step": steps[-1]["step"] if steps else None,
            "first_step_seconds": round(steps[0]["time"] - started["time"], 2) if steps else None,
            "steps_per_second": round(1 / statistics.median(gaps), 3) if gaps else None,
            "tokens_per_second": statistics.median(e["tokens_per_second"] for e in steps) if steps else None,
            "memory_estimate_gib": round(started["memory_estimate_bytes"] / 2**30, 2),
            "peak_memory_gib": round(finished["peak_memory_bytes"] / 2**30, 2) if finished else None,
            "precision": started["precision"], "device": started["device"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="llama2-7b")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--compile", choices=["on", "off", "auto"], default="auto", dest="compile_")
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary one)")
    parser.add_argument("--record", type=Path, help="the telemetry recording to write (default: WORK/telemetry.jsonl)")
    parser.add_argument("--tokenizer", type=Path, help="the tokenizer's folder (default: the embedded model's); on a "
                        "machine without the embedded model, carry its tokenizer files and name them here")
    parser.add_argument("--bench-limit", type=int, default=20, help="bench items per file (default 20)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the first training segment may take")
    args = parser.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    work = args.work or Path(tempfile.mkdtemp(prefix="forge-e2e-"))
    from forge_tui.engine.models import resolve_model

    tokenizer = args.tokenizer or resolve_model("smollm2-135m-instruct", ())
    parameters = save_model_with_tokenizer(args.shape, tokenizer, work / "model", "cuda" if cuda else "cpu")
    config = work / "forge.toml"
    config.write_text(config_text(work / "model", work / "runs", cuda, args.steps, args.compile_))
    cli, run = Cli(config), work / "runs" / "e2e"
    recording = args.record or work / "telemetry.jsonl"
    telemetry = subprocess.Popen(cli.argv("telemetry", "--source", "nvml" if cuda else "auto", "--record", str(recording),
                                          "--duration", str(args.timeout * 2)), cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    killed = train_then_kill(cli, run, args.steps // 2, args.timeout)
    resumed = cli.run("resume", "resume", str(run))
    telemetry.send_signal(signal.SIGTERM)
    telemetry.wait(timeout=30)
    bench = cli.run("bench", "bench", str(run), "--eval", str(DATA / "eval.jsonl"), "--limit", str(args.bench_limit), "--json")
    merged = cli.run("export merged", "export", str(run), "--merged", str(work / "merged"))
    gguf = cli.run("export gguf", "export", str(run), "--gguf", str(work / "model.gguf"))
    parts = segments(run)
    result = json.loads(bench.stdout) if bench.returncode == 0 else {}
    summary = {
        "shape": args.shape, "parameters": parameters, "cuda": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu x{os.cpu_count()}",
        "killed_mid_run": killed, "resumed_exit": resumed.returncode, "segments": [segment_figures(s) for s in parts],
        "finished_steps": last_step(run), "steps": args.steps,
        "bench": {"base": result.get("base", {}).get("composite"), "tuned": result.get("tuned", {}).get("composite")},
        "merged_export": merged.returncode == 0 and (work / "merged").is_dir(),
        "gguf_export": gguf.returncode == 0 and (work / "model.gguf").is_file(),
        "gguf_gib": round((work / "model.gguf").stat().st_size / 2**30, 2) if (work / "model.gguf").is_file() else None,
        "telemetry_rows": max(0, len(recording.read_text().splitlines()) - 1) if recording.is_file() else 0,
        "telemetry_recording": str(recording), "seconds": cli.seconds, "work": str(work),
        "versions": {"torch": torch.__version__},
    }
    for index, figures in enumerate(summary["segments"]):
        print(f"segment {index + 1}: steps {figures['from_step']}-{figures['to_step']}, first step {figures['first_step_seconds']} s, "
              f"{figures['steps_per_second']} steps/s, peak {figures['peak_memory_gib']} GiB vs estimate "
              f"{figures['memory_estimate_gib']} GiB", flush=True)
    ok = (killed and resumed.returncode == 0 and summary["finished_steps"] == args.steps and len(parts) == 2
          and bench.returncode == 0 and summary["merged_export"] and summary["gguf_export"])
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
