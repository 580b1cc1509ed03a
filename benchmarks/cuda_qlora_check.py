"""Prove the CUDA QLoRA path on a 7B-shaped model built from a config (random weights: no download).

    python benchmarks/cuda_qlora_check.py --tokenizer DIR [--shape llama2-7b|tiny] [--steps N]

Builds the model in bf16, saves it as safetensors with the given tokenizer, then runs the project's
own `forge-tui train` on it (4-bit NF4, double quantisation, bf16 compute, gradient checkpointing)
over the sample data, and prints one JSON line: mode, device, steps, tokens/s, peak memory, losses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from shapes import SHAPES, save_random_model  # noqa: E402


def build_model(shape: str, tokenizer_dir: Path, out: Path) -> int:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    count = save_random_model(shape, out, device, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    tokenizer.save_pretrained(out)
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama2-7b")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quantization", default="nf4")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="forge-cuda-"))
    model_dir = work / "model"
    parameters = build_model(args.shape, args.tokenizer, model_dir)
    config = work / "forge.toml"
    device = "cuda" if args.quantization == "nf4" or os.environ.get("FORGE_DEVICE") == "cuda" else "auto"
    config.write_text(f"""
[model]
name = "{model_dir}"
device = "{device}"
quantization = "{args.quantization}"
compute_dtype = "{'bf16' if device == 'cuda' else 'auto'}"
gradient_checkpointing = "{'on' if device == 'cuda' else 'off'}"
[runs]
dir = "{work / 'runs'}"
[data]
max_seq_len = 1024
[train]
micro_batch_size = 8
grad_accum = 1
learning_rate = 0.0002
eval_every = {args.steps}
save_every = {args.steps}
""")
    command = [sys.executable, "-m", "forge_tui", "--config", str(config), "train",
               "--dataset", str(ROOT / "sample_data/waterworks/train.jsonl"), "--max-steps", str(args.steps),
               "--run-dir", str(work / "run")]
    result = subprocess.run(command, cwd=ROOT, text=True, capture_output=True, check=False)
    print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    events = [json.loads(line) for line in (work / "run" / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    started = next(e for e in events if e["type"] == "run_started")
    finished: dict[str, Any] = next((e for e in events if e["type"] == "finished"), {})
    summary = {
        "shape": args.shape, "parameters": parameters, "mode": started["mode"], "device": started["device"],
        "precision": started["precision"], "steps": len(steps),
        "tokens_per_second_median": statistics.median(e["tokens_per_second"] for e in steps[2:] or steps),
        "first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"], "eval_loss": finished.get("eval_loss"),
        "peak_memory_gib": round(finished.get("peak_memory_bytes", 0) / 2**30, 2),
        "memory_estimate_gib": round(started["memory_estimate_bytes"] / 2**30, 2), "returncode": result.returncode,
    }
    print(json.dumps(summary))
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
