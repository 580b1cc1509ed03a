"""The time estimate against the time taken: a dry run's estimate, then the run itself.

    python benchmarks/eta_accuracy.py [--preset quick] [--dataset sample_data/waterworks/train.jsonl]
                                      [--set SECTION.KEY=VALUE ...] [--work DIR]

Runs `forge-tui train --dry-run --json` (the speed probe runs unless this shape was measured here
before), then the training as an operator launches it, timed from the command's start to its exit,
and reads the run's own record (`runs --json`): the estimate it recorded at its start and the time
its runner worked. Target: the estimate within 25% of the time taken. Prints a table; the last line
is one JSON object.
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
TARGET = 0.25


def forge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "forge_tui", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--dataset", default="sample_data/waterworks/train.jsonl")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="forge-eta-")))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    config = args.work / "forge.toml"
    config.write_text(f'[runs]\ndir = "{args.work / "runs"}"\n')
    settings = ["--config", str(config), "--preset", args.preset, "--dataset", args.dataset,
                *[flag for pair in args.set for flag in ("--set", pair)]]
    started = time.monotonic()
    dry = forge("train", "--dry-run", "--json", *settings)
    dry_seconds = time.monotonic() - started
    if dry.returncode != 0:
        print(dry.stdout, dry.stderr, file=sys.stderr)
        return 1
    found = json.loads(dry.stdout)
    eta = found["eta"]
    if eta is None:
        print(f"the dry run gave no estimate: {found['eta_note']}", file=sys.stderr)
        return 1
    started = time.monotonic()
    trained = forge("train", *settings)
    wall = time.monotonic() - started
    if trained.returncode != 0:
        print(trained.stderr, file=sys.stderr)
        return 1
    (run,) = json.loads(forge("runs", "--json", "--config", str(config)).stdout)
    figures = {"preset": args.preset, "settings": args.set, "dry_run_seconds": round(dry_seconds, 1),
               "probe_ran": eta["measured"], "estimate_seconds": eta["seconds"], "estimate_parts": eta["parts"],
               "recorded_estimate_seconds": run["estimate_s"], "runner_seconds": run["record"]["seconds"],
               "wall_seconds": round(wall, 1), "steps": run["step"]}
    figures["ratio_estimate_to_wall"] = round(eta["seconds"] / wall, 3)
    figures["within_target"] = abs(eta["seconds"] / wall - 1) <= TARGET
    for name, value in figures.items():
        print(f"{name:<28} {value}")
    print(json.dumps(figures))
    return 0 if figures["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
