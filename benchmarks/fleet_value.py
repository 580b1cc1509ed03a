"""Is a fleet worth it? Each node alone versus the fleet, on facts no single node saw.

    python benchmarks/fleet_value.py [--rounds R] [--steps-per-round N] [--work DIR]

The sample data is split by category across 3 nodes (each node sees only its own categories' facts).
(a) each node trains alone on its shard for R x N steps; (b) the three train as a fleet
(`forge-tui fleet local`, real processes on loopback) for R rounds of N steps each, so every node does
the same R x N steps either way. All four adapters are benchmarked on the whole eval set (every
category) and the retention set. The fleet's adapter must beat every single-node adapter on the
facts subscore. Prints the table, the bytes each node sent per round and the wall times; the last
line is one JSON object. Everything runs as an operator would run it (the CLI, the quick preset).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sample_data" / "waterworks"
NODES = 3


def forge(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "forge_tui", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"forge-tui {' '.join(args[:2])} failed with {done.returncode}")
    return done


def bench(run: Path) -> dict[str, Any]:
    """The run's benchmark on the whole eval and retention sets (the one it has, when it has one)."""
    done = run / "bench" / "result.json"
    result = json.loads(done.read_text()) if done.is_file() else json.loads(
        forge("bench", str(run), "--eval", str(DATA / "eval.jsonl"), "--retention", str(DATA / "retention.jsonl"), "--json").stdout)
    return {"composite": result["tuned"]["composite"], "facts": result["tuned"]["subscores"]["facts"],
            "retention": result["tuned"]["subscores"]["retention"], "base_composite": result["base"]["composite"],
            "base_facts": result["base"]["subscores"]["facts"],
            "categories": {name: row["tuned"]["composite"] for name, row in result["categories"].items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps-per-round", type=int, default=8)
    parser.add_argument("--server-lr", type=float, default=1.0, help="the fleet's server learning rate (1: plain FedAvg)")
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary one); single-node runs already "
                                                  "trained and benchmarked there are reused")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="forge-fleet-value-"))
    sys.path.insert(0, str(ROOT))
    from forge_tui.fleet.shards import write_shards

    steps = args.rounds * args.steps_per_round
    shards = write_shards(DATA / "train.jsonl", NODES, "by-category", args.work / "shards")
    categories = [sorted({json.loads(line)["category"] for line in shard.read_text().splitlines()}) for shard in shards]
    rows: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for index, shard in enumerate(shards, start=1):
        run = args.work / f"alone-{index}-{steps}-steps"
        if not (run / "bench" / "result.json").is_file():
            started = time.monotonic()
            forge("train", "--preset", "quick", "--dataset", str(shard), "--max-steps", str(steps), "--run-dir", str(run))
            seconds[run.name] = round(time.monotonic() - started, 1)
        rows[f"node-{index} alone ({', '.join(categories[index - 1])})"] = bench(run)
    fleet_run = args.work / f"fleet-{args.rounds}x{args.steps_per_round}-server-lr-{args.server_lr:g}"
    started = time.monotonic()
    summary = json.loads(forge("fleet", "local", "--preset", "quick", "--nodes", str(NODES), "--split", "by-category",
                               "--rounds", str(args.rounds), "--steps-per-round", str(args.steps_per_round),
                               "--server-lr", str(args.server_lr),
                               "--dataset", str(DATA / "train.jsonl"), "--run-dir", str(fleet_run), "--json").stdout.splitlines()[-1])
    seconds["fleet"] = round(time.monotonic() - started, 1)
    fleet_name = "fleet (3 nodes, FedAvg)" if args.server_lr == 1 else f"fleet (3 nodes, FedAvgM, server lr {args.server_lr:g})"
    rows[fleet_name] = bench(fleet_run)
    sent = [{"round": r["round"], "nodes": r["nodes"], "bytes_in": r["bytes_in"], "bytes_out": r["bytes_out"],
             "per_node_sent": r["bytes_in"] // max(1, r["nodes"])} for r in summary["rounds"]]

    print(f"{'adapter':<48} {'composite':>9} {'facts':>6} {'retention':>9}")
    for name, row in rows.items():
        print(f"{name:<48} {row['composite']:>9.1f} {row['facts']:>6.1f} {row['retention']:>9.1f}")
    base = next(iter(rows.values()))
    print(f"{'base model':<48} {base['base_composite']:>9.1f} {base['base_facts']:>6.1f}")
    for row in sent:
        print(f"round {row['round']}: {row['nodes']} nodes, each sent {row['per_node_sent'] / 2**20:.1f} MiB, "
              f"received {row['bytes_out'] / max(1, row['nodes']) / 2**20:.1f} MiB")
    print("wall seconds:", seconds)
    fleet_facts = rows[fleet_name]["facts"]
    single_best = max(float(r["facts"]) for name, r in rows.items() if "alone" in name)
    met = float(fleet_facts) > single_best
    print(json.dumps({"rounds": args.rounds, "steps_per_round": args.steps_per_round, "server_lr": args.server_lr,
                      "table": rows, "bytes": sent,
                      "seconds": seconds, "fleet_facts": fleet_facts, "best_single_facts": single_best,
                      "fleet_beats_every_single_node": met, "work": str(args.work)}))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
