"""The memory estimate against measured peaks: `train` runs at chosen shapes, each in its own process.

    python benchmarks/memory_fit.py [--shapes NAME,NAME] [--work DIR] [--fit]

Each shape is a real `forge-tui train` run of a few steps on the embedded model, with every sample
longer than the shape's max_seq_len (so every batch is exactly micro-batch x max_seq_len tokens, the
worst case the estimate is for) and answers that carry loss on almost every token. The trainer
records its own estimate (`run_started`) and its measured peak (`run_finished`: peak RSS on a CPU,
max allocated on CUDA); this prints both, their ratio and the verdict against the target: within
+-20% of the measured peak, and never more than 10% under it. `--fit` also prints the least-squares
fit of the estimate's free constants (runtime overhead, activation and head bytes) to the
measurements, which is how the constants in forge_tui/engine/memory.py were set. The last line is one
JSON object; the exit status is 1 when a shape misses the target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4  # CPU: the allocator's peak grows over the first steps (freed blocks fragment), then holds
SAMPLES_PER_SHAPE = 24  # a few batches and a held-out split at any micro-batch below


@dataclass(frozen=True)
class Shape:
    seq_len: int
    micro_batch: int
    rank: int = 16
    rehearsal: bool = False
    checkpointing: bool = False
    compiled: bool = False
    dropout: float = 0.05   # the default config's LoRA dropout

    @property
    def name(self) -> str:
        extras = "".join(f"-{word}" for word, on in (("rehearsal", self.rehearsal), ("ckpt", self.checkpointing),
                                                      ("compiled", self.compiled),
                                                      ("no-dropout", not self.dropout)) if on)
        return f"L{self.seq_len}-b{self.micro_batch}-r{self.rank}{extras}"

    def config(self, dataset: Path, runs: Path) -> str:
        on_off = {True: '"on"', False: '"off"'}
        return (f'[model]\ndevice = "cpu"\ngradient_checkpointing = {on_off[self.checkpointing]}\ncompile = {on_off[self.compiled]}\n'
                f'[lora]\nr = {self.rank}\nalpha = {2 * self.rank}\ndropout = {self.dropout}\n'
                f'[data]\nmax_seq_len = {self.seq_len}\nrehearsal = "{"general" if self.rehearsal else ""}"\n'
                f'[train]\ndataset = "{dataset}"\nmicro_batch_size = {self.micro_batch}\ngrad_accum = 1\n'
                f'max_steps = {STEPS}\neval_every = 0\nsave_every = 0\n[runs]\ndir = "{runs}"\n')


SHAPES = [Shape(128, 1), Shape(128, 8), Shape(512, 1), Shape(512, 4), Shape(1024, 1), Shape(1024, 4),
          Shape(256, 4, rank=64), Shape(512, 4, rank=4), Shape(512, 4, dropout=0.0), Shape(512, 4, rehearsal=True),
          Shape(1024, 2, rehearsal=True), Shape(512, 4, checkpointing=True), Shape(1024, 4, checkpointing=True),
          Shape(512, 4, compiled=True)]


def write_dataset(path: Path, words: int) -> None:
    """Samples whose answer alone is longer than any max_seq_len here: truncation makes each exactly
    max_seq_len tokens, nearly all of them labelled."""
    answer = " ".join(f"reading {i} at valve {i % 97}" for i in range(words // 5))
    with path.open("w") as out:
        for i in range(SAMPLES_PER_SHAPE):
            out.write(json.dumps({"messages": [{"role": "user", "content": f"Log {i}?"},
                                               {"role": "assistant", "content": answer}]}) + "\n")


def measure(shape: Shape, work: Path) -> dict[str, Any]:
    """One `train` run at the shape: the trainer's estimate and its measured peak, in bytes."""
    folder = work / shape.name
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "data.jsonl"
    write_dataset(dataset, 2 * shape.seq_len)
    config = folder / "config.toml"
    config.write_text(shape.config(dataset, folder / "runs"))
    run = folder / "runs" / "run"
    if not (run / "events.jsonl").is_file() or "\"finished\"" not in (run / "events.jsonl").read_text():
        done = subprocess.run([sys.executable, "-m", "forge_tui", "--config", str(config), "train", "--run-dir", str(run)],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{shape.name}: train failed ({done.returncode}): {done.stderr[-2000:]}")
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["type"] == "run_started")
    finished = next(e for e in events if e["type"] == "finished")
    return {"shape": shape.name, "estimate": current_estimate(shape), "recorded_estimate": started["memory_estimate_bytes"],
            "peak": finished["peak_memory_bytes"]}


def _model() -> tuple[Path, int]:
    sys.path.insert(0, str(ROOT))
    from forge_tui.engine.models import describe_directory, resolve_model

    folder = resolve_model("smollm2-135m-instruct", ())
    return folder, describe_directory(folder).parameters or 0


def _workload(shape: Shape) -> Any:
    from forge_tui.engine.memory import Workload

    return Workload(device="cpu", quantized=False, dtype="fp32", r=shape.rank, micro_batch=shape.micro_batch,
                    seq_len=shape.seq_len, checkpointing=shape.checkpointing, rehearsal=shape.rehearsal,
                    dropout=shape.dropout > 0, compiled=shape.compiled)


def features(shape: Shape) -> dict[str, float]:
    """The estimate's terms at this shape: the fixed bytes and each free constant's factor."""
    from forge_tui.engine.memory import terms

    return terms(*_model(), _workload(shape)).features()


def current_estimate(shape: Shape) -> int:
    """The estimate as the code now makes it (the run recorded the one it was started with)."""
    from forge_tui.engine.memory import estimate

    return estimate(*_model(), _workload(shape)).total


def fit(rows: list[dict[str, Any]], shapes: dict[str, Shape]) -> dict[str, float]:
    """Least squares of (peak - fixed terms) on the free constants' factors."""
    import numpy as np

    names = [k for k in features(next(iter(shapes.values()))) if k != "fixed"]
    table = [features(shapes[row["shape"]]) for row in rows]
    a = np.array([[f[k] for k in names] for f in table])
    b = np.array([row["peak"] - f["fixed"] for row, f in zip(rows, table, strict=True)])
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    return dict(zip(names, (float(x) for x in solution), strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", help="comma-separated shape names (default: all): " + ", ".join(s.name for s in SHAPES))
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary one); finished shapes are reused")
    parser.add_argument("--fit", action="store_true", help="also fit the estimate's free constants to the measurements")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="forge-memory-fit-"))
    wanted = set(args.shapes.split(",")) if args.shapes else None
    shapes = {s.name: s for s in SHAPES if wanted is None or s.name in wanted}
    rows = []
    print(f"{'shape':<28} {'estimate GiB':>12} {'peak GiB':>9} {'est/peak':>9}  verdict")
    for shape in shapes.values():
        row = measure(shape, work)
        row["ratio"] = round(row["estimate"] / row["peak"], 3)
        row["ok"] = 0.9 <= row["ratio"] <= 1.2
        rows.append(row)
        print(f"{shape.name:<28} {row['estimate'] / 2**30:>12.2f} {row['peak'] / 2**30:>9.2f} {row['ratio']:>9.2f}  "
              f"{'within target' if row['ok'] else 'MISSES the target'}", flush=True)
    constants = fit(rows, shapes) if args.fit else {}
    if constants:
        print("fitted constants:", {k: round(v, 3) for k, v in constants.items()})
    met = all(row["ok"] for row in rows)
    print(json.dumps({"rows": rows, "all_within_target": met, "fitted": constants, "work": str(work)}))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
