"""The demo, measured: quick preset on the sample data, then the benchmark, on this machine.

    python benchmarks/demo_quick_bench.py [--runs-dir DIR]

Runs `forge-tui train --preset quick --dataset sample_data/waterworks/train.jsonl` and
`forge-tui bench RUN --json` as an operator would, times both, and checks the targets: training plus
benchmark under 15 minutes on 2 cores, tuned at least 15 composite points above base, the facts
subscore at least 10 above base, retention no more than 5 below base. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"minutes": 15.0, "composite_gain": 15.0, "facts_gain": 10.0, "retention_loss": 5.0}


def forge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "forge_tui", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="forge-demo-")))
    args = parser.parse_args()
    run = args.runs_dir / "quick-demo"
    started = time.monotonic()
    trained = forge("train", "--preset", "quick", "--dataset", "sample_data/waterworks/train.jsonl", "--run-dir", str(run))
    train_minutes = (time.monotonic() - started) / 60
    if trained.returncode != 0:
        print(trained.stderr, file=sys.stderr)
        return 1
    benched = forge("bench", str(run), "--json")
    total_minutes = (time.monotonic() - started) / 60
    if benched.returncode != 0:
        print(benched.stderr, file=sys.stderr)
        return 1
    result = json.loads(benched.stdout)
    delta = result["delta"]
    figures = {
        "train_minutes": round(train_minutes, 2), "total_minutes": round(total_minutes, 2),
        "base_composite": result["base"]["composite"], "tuned_composite": result["tuned"]["composite"],
        "composite_gain": delta["composite"], "ci95_delta": result["ci95"]["delta"],
        "facts_gain": delta["subscores"]["facts"], "retention_change": delta["subscores"]["retention"],
        "base": result["base"]["subscores"], "tuned": result["tuned"]["subscores"],
    }
    checks = {
        "time": total_minutes < TARGETS["minutes"],
        "composite": delta["composite"] >= TARGETS["composite_gain"],
        "facts": delta["subscores"]["facts"] >= TARGETS["facts_gain"],
        "retention": delta["subscores"]["retention"] >= -TARGETS["retention_loss"],
    }
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(f"run: {run}")
    print(json.dumps({**figures, "checks": checks, "all_met": all(checks.values())}))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
