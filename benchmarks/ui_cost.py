"""What watching costs: training throughput with the TUI attached against headless, in one run.

    python benchmarks/ui_cost.py [--steps 40] [--rounds 2]

Each round trains the embedded default on the sample data (the quick preset without rehearsal, so
every second is training) for --steps steps, once headless and once with the real TUI attached: the
app runs on a pseudo-terminal of 80x24 (a reader drains its output as a terminal would), attaches to
the live run, is switched to the Monitor, and samples telemetry every second. Rounds alternate
(headless, TUI, TUI, headless, ...). Throughput is loss-bearing tokens per second of step time,
from the run's own step events, after the first WARMUP steps. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from terminal import Terminal  # noqa: E402

from forge_tui.engine.events import read_events  # noqa: E402

WARMUP = 5
TARGET = 0.98
CONFIG = """
[data]
rehearsal = ""
[telemetry]
interval = 1.0
[train]
eval_every = 0
save_every = 0
"""


def forge(*args: str) -> list[str]:
    return [sys.executable, "-m", "forge_tui", *args]


def wait_for(path: Path, kind: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(e["type"] == kind for e in read_events(path)):
            return
        time.sleep(0.2)
    raise SystemExit(f"no {kind} event in {path} after {timeout:.0f} s")


def throughput(events: Path) -> float:
    steps = [e for e in read_events(events) if e["type"] == "step"][WARMUP:]
    tokens = sum(e["tokens"] for e in steps)
    seconds = sum(e["tokens"] / e["tokens_per_second"] for e in steps if e["tokens_per_second"])
    return float(tokens / seconds)


def one_run(work: Path, index: int, steps: int, with_tui: bool) -> dict[str, Any]:
    run = work / f"run-{index}"
    env = {**os.environ, "FORGE_TUI_RUNS_DIR": str(work), "TERM": "xterm-256color"}
    trainer = subprocess.Popen(forge("--config", str(work / "forge.toml"), "train", "--preset", "quick", "--dataset",
                                     str(ROOT / "sample_data/waterworks/train.jsonl"), "--max-steps", str(steps),
                                     "--run-dir", str(run)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tui = None
    if with_tui:
        wait_for(run / "events.jsonl", "run_started")
        tui = Terminal(forge(), env, ROOT)
        time.sleep(3)  # the app opens and attaches to the live run
        tui.press("3")
    _, stderr = trainer.communicate()
    drawn = 0
    if tui is not None:
        drawn = tui.bytes
        tui.close()
    if trainer.returncode != 0:
        raise SystemExit(f"training failed:\n{stderr[-3000:]}")
    return {"tui": with_tui, "tok_s": throughput(run / "events.jsonl"), "terminal_bytes": drawn}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="forge-ui-cost-") as scratch:
        work = Path(scratch)
        (work / "forge.toml").write_text(CONFIG)
        order = [flag for round_ in range(args.rounds) for flag in ((False, True) if round_ % 2 == 0 else (True, False))]
        for index, with_tui in enumerate(order):
            result = one_run(work, index, args.steps, with_tui)
            results.append(result)
            print(f"{'with TUI' if with_tui else 'headless':9s} {result['tok_s']:7.1f} tok/s"
                  + (f"  (the TUI drew {result['terminal_bytes']:,} bytes)" if with_tui else ""), flush=True)
    mean = {flag: sum(r["tok_s"] for r in results if r["tui"] == flag) / args.rounds for flag in (False, True)}
    ratio = mean[True] / mean[False]
    summary = {"headless_tok_s": round(mean[False], 1), "tui_tok_s": round(mean[True], 1), "ratio": round(ratio, 4),
               "target": TARGET, "met": ratio >= TARGET, "steps": args.steps, "rounds": args.rounds, "cpus": os.cpu_count()}
    print(f"with the TUI attached: {ratio:.1%} of headless throughput (target {TARGET:.0%})")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
