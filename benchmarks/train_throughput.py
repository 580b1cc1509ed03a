"""Training throughput: Forge TUI's engine against a plain Hugging Face loop, measured in one run.

    python benchmarks/train_throughput.py                       # CPU, the embedded default's shape
    python benchmarks/train_throughput.py --shape llama2-7b     # CUDA: NF4 QLoRA on a 7B shape
    python benchmarks/train_throughput.py --shape llama2-7b --peer unsloth --variants engine-liger

Both sides get the same model (random weights built from the shape's config and saved once), the
same LoRA (r 16, alpha 32, all linear layers, no dropout), optimizer, seed and samples (lengths
log-normal around --median tokens, capped at --cap; the first quarter of each sample is prompt and
carries no loss), and run one epoch over them at batch 8, each in its own process, alternating
engine/baseline for --rounds rounds. The baseline is the plain stack: shuffled batches padded to
their longest sample, `model(..., labels=...).loss`. The engine is forge_tui.engine.train's own
step (length-grouped batches, loss on labelled positions only). What counts is useful tokens per
second: tokens that carry loss, pads and prompts excluded. `--peer unsloth` puts Unsloth (its 4-bit
loading, LoRA and checkpointing, CUDA only) in the baseline's place, on the same loop; MFU is
reported beside tokens/s where the GPU's peak is known. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from shapes import SHAPES, save_model_with_tokenizer, save_random_model  # noqa: E402

BATCH = 8
LEARNING_RATE = 2e-4
LORA_RANK, LORA_ALPHA, LORA_DROPOUT = 16, 32, 0.0
LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # "all-linear" spelt out
# Dense bf16 peak FLOP/s (no sparsity) of the GPUs MFU is reported for, by a word in the device's name.
DENSE_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "RTX 4090": 165e12, "Orin": 42.5e12}
PROMPT_SHARE = 0.25
WARMUP_STEPS = 2


# --------------------------------------------------------------------------- shared set-up


def make_samples(count: int, median: int, cap: int, vocab: int, seed: int) -> list[dict[str, list[int]]]:
    """Token ids with labels: log-normal lengths (sigma 0.5) around `median`, capped at `cap`."""
    rng = random.Random(seed)
    samples = []
    for _ in range(count):
        length = max(16, min(cap, round(rng.lognormvariate(math.log(median), 0.5))))
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        prompt = int(length * PROMPT_SHARE)
        samples.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return samples


def peak_mib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def useful(labels: list[list[int]]) -> int:
    """Tokens that carry loss: a labelled position predicted from the one before it."""
    return sum(sum(1 for t in row[1:] if t != -100) for row in labels)


# --------------------------------------------------------------------------- the two sides


def engine_side(model_dir: Path, samples: list[dict[str, list[int]]], device: str, seed: int,
                compile_: str = "auto", liger: bool = False) -> dict[str, Any]:
    """Forge TUI's own plan, loading and step (forge_tui.engine.train); `compile_` overrides
    [model] compile (auto: on for CUDA); `liger` swaps in liger-kernel's fused RMSNorm, SwiGLU and
    RoPE (its fused cross-entropy does not apply: the engine's head is its own, see loss.py)."""
    import torch

    if liger:
        from liger_kernel.transformers import apply_liger_kernel_to_llama

        apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)

    from forge_tui.config import parse_config
    from forge_tui.engine.batches import Encoded, batch_at, steps_per_epoch
    from forge_tui.engine.plan import add_adapter, compile_layers, load_for_training, resolve_plan
    from forge_tui.engine.train import train_batch

    config = parse_config("", model_dir / "forge.toml", "standard", {
        "model": {"device": device, "compile": compile_}, "lora": {"r": LORA_RANK, "alpha": LORA_ALPHA, "dropout": LORA_DROPOUT},
        "train": {"seed": seed, "learning_rate": LEARNING_RATE}})
    plan = resolve_plan(config)
    model = add_adapter(load_for_training(model_dir, plan), config)
    if plan.compiled:
        compile_layers(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE, weight_decay=0.0)
    encoded = [Encoded(tuple(s["input_ids"]), tuple(s["labels"]), False) for s in samples]
    lengths = tuple(len(e.input_ids) for e in encoded)

    def step(index: int) -> tuple[float, int]:
        _, indices = batch_at(index, lengths, BATCH, seed)
        batch = [encoded[i] for i in indices]
        loss, _ = train_batch(model, optimizer, trainable, batch, micro_batch=BATCH, device=plan.device, pad=0,
                              max_grad_norm=1.0)
        return loss, useful([list(e.labels) for e in batch])

    return timed(step, steps_per_epoch(len(samples), BATCH), plan.device)


def baseline_side(model_dir: Path, samples: list[dict[str, list[int]]], device: str, seed: int) -> dict[str, Any]:
    """The plain stack: from_pretrained (+ bitsandbytes NF4 on CUDA), peft, shuffled padded batches."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch.manual_seed(seed)
    if device == "cuda":
        nf4 = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
               "bnb_4bit_compute_dtype": torch.bfloat16}
        quant = BitsAndBytesConfig(**nf4)  # type: ignore[no-untyped-call]
        model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=quant, dtype=torch.bfloat16,
                                                     device_map={"": 0})
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,  # type: ignore[no-untyped-call]
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    peft_model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=LORA_DROPOUT,
                                                  target_modules="all-linear", task_type="CAUSAL_LM"))
    return padded_loop(peft_model, samples, device, seed)


def unsloth_side(model_dir: Path, samples: list[dict[str, list[int]]], device: str, seed: int) -> dict[str, Any]:
    """Unsloth (its own 4-bit loading, LoRA and gradient checkpointing) on the same loop as the
    baseline: the same model, rank, targets, samples and batches. Unsloth needs a CUDA GPU."""
    if device != "cuda":
        raise SystemExit("--peer unsloth needs a CUDA GPU (Unsloth has no CPU path)")
    import torch
    from unsloth import FastLanguageModel  # before transformers and peft, which it patches as they load

    model, _ = FastLanguageModel.from_pretrained(str(model_dir), max_seq_length=max(len(s["input_ids"]) for s in samples),
                                                 dtype=torch.bfloat16, load_in_4bit=True)
    model = FastLanguageModel.get_peft_model(model, r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=LORA_DROPOUT,
                                             target_modules=LLAMA_LINEAR, bias="none",
                                             use_gradient_checkpointing="unsloth", random_state=seed)
    return padded_loop(model, samples, device, seed)


def padded_loop(peft_model: Any, samples: list[dict[str, list[int]]], device: str, seed: int) -> dict[str, Any]:
    """The plain loop: shuffled batches padded to their longest sample, the model's own mean loss."""
    import torch

    peft_model.train()
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE, weight_decay=0.0)
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)

    def step(index: int) -> tuple[float, int]:
        batch = [samples[i] for i in order[index * BATCH:(index + 1) * BATCH]]
        width = max(len(s["input_ids"]) for s in batch)
        ids = torch.tensor([s["input_ids"] + [0] * (width - len(s["input_ids"])) for s in batch], device=device)
        labels = torch.tensor([s["labels"] + [-100] * (width - len(s["labels"])) for s in batch], device=device)
        mask = torch.tensor([[1] * len(s["input_ids"]) + [0] * (width - len(s["input_ids"])) for s in batch], device=device)
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()), useful([s["labels"] for s in batch])

    return timed(step, math.ceil(len(samples) / BATCH), device)


def timed(step: Any, steps: int, device: str) -> dict[str, Any]:
    """Warm up, then time one epoch of steps; useful tokens per second and peak memory."""
    import torch

    started = time.perf_counter()
    first = [step(index)[0] for index in range(WARMUP_STEPS)][0]  # noqa: RUF015 - every warm-up step runs; the first one's time is kept
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    warmup = time.perf_counter() - started
    tokens, losses, started = 0, [], time.perf_counter()
    for index in range(steps):
        loss, count = step(index)
        losses.append(loss)
        tokens += count
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"tok_s": tokens / seconds, "seconds": seconds, "tokens": tokens, "peak_mib": peak_mib(device),
            "warmup_s": warmup, "first_loss": first, "final_loss": losses[-1]}


Side = Callable[[Path, list[dict[str, list[int]]], str, int], dict[str, Any]]
SIDES: dict[str, Side] = {
    "engine": engine_side,
    "baseline": baseline_side,
    "engine-uncompiled": functools.partial(engine_side, compile_="off"),
    "engine-compiled": functools.partial(engine_side, compile_="on"),
    "engine-liger": functools.partial(engine_side, liger=True),
    "unsloth": unsloth_side,
}


# --------------------------------------------------------------------------- the run


def run_side(side: str, args: argparse.Namespace, model_dir: Path, data: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--side", side, "--model-dir", str(model_dir), "--data", str(data),
               "--device", args.device, "--seed", str(args.seed)]
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # Unsloth checks the Hub at load; nothing to fetch here
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **offline})
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def versions(device: str) -> dict[str, str]:
    import peft
    import torch
    import transformers

    found = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    if device == "cuda":  # only the CUDA side quantises
        import bitsandbytes

        found["bitsandbytes"] = bitsandbytes.__version__
    from importlib.metadata import PackageNotFoundError, version

    for peer in ("unsloth", "liger-kernel"):
        with contextlib.suppress(PackageNotFoundError):
            found[peer] = version(peer)
    return found


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device == "cuda" else f"cpu x{os.cpu_count()}"


def mfu(tok_s: float, parameters: int, device: str) -> float | None:
    """Model FLOPs utilisation as the issue defines it: 6 x parameters x useful tokens/s over the
    GPU's dense bf16 peak (6N counts the frozen weights' gradients LoRA never computes, so it is
    the conventional, not the executed, figure). None where the peak is not known (a CPU)."""
    peak = next((flops for word, flops in DENSE_BF16_PEAK.items() if word in device), None)
    return round(6 * parameters * tok_s / peak, 4) if peak else None


def build(args: argparse.Namespace, model_dir: Path) -> int:
    """The model both sides load; Unsloth also loads a tokenizer from its folder (the embedded one's)."""
    if args.peer != "unsloth":
        return save_random_model(args.shape, model_dir, args.device)
    from forge_tui.engine.models import resolve_model

    return save_model_with_tokenizer(args.shape, resolve_model("smollm2-135m-instruct", ()), model_dir, args.device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="embedded")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--peer", choices=["hf", "unsloth"], default="hf",
                        help="what the engine is measured against: the plain Hugging Face loop, or Unsloth (CUDA only)")
    parser.add_argument("--samples", type=int, help="samples per epoch (default: 64 on CPU, 256 on CUDA)")
    parser.add_argument("--median", type=int, default=300)
    parser.add_argument("--cap", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="", help="extra sides measured alongside: "
                        + ", ".join(name for name in SIDES if name not in ("engine", "baseline", "unsloth")))
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        samples = json.loads(args.data.read_text())
        print(json.dumps(SIDES[args.side](args.model_dir, samples, args.device, args.seed)))
        return 0
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.peer == "unsloth" and args.device != "cuda":
        print("--peer unsloth needs a CUDA GPU (Unsloth has no CPU path)", file=sys.stderr)
        return 2
    count = args.samples or (256 if args.device == "cuda" else 64)
    peer = "unsloth" if args.peer == "unsloth" else "baseline"
    with tempfile.TemporaryDirectory(prefix="forge-throughput-") as scratch:
        model_dir, data = Path(scratch) / "model", Path(scratch) / "samples.json"
        parameters = build(args, model_dir)
        data.write_text(json.dumps(make_samples(count, args.median, args.cap, SHAPES[args.shape]["vocab_size"], args.seed)))
        sides = [peer, *filter(None, args.variants.split(",")), "engine"]
        results: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                results[side].append(run_side(side, args, model_dir, data))
                figures = results[side][-1]
                print(f"round {round_ + 1} {side:17s} {figures['tok_s']:9.1f} useful tok/s  peak {figures['peak_mib']:8.0f} MiB"
                      f"  {figures['seconds']:6.1f} s (warm-up {figures['warmup_s']:.1f} s)  loss "
                      f"{figures['first_loss']:.3f} -> {figures['final_loss']:.3f}", flush=True)
    best = {side: max(runs, key=lambda r: r["tok_s"]) for side, runs in results.items()}
    device = device_name(args.device)

    def side_figures(side: str) -> dict[str, Any]:
        return {"tok_s": round(best[side]["tok_s"], 1), "ratio": round(best[side]["tok_s"] / best[peer]["tok_s"], 3),
                "peak_mib": round(max(r["peak_mib"] for r in results[side])), "mfu": mfu(best[side]["tok_s"], parameters, device)}

    summary = {
        "peer": peer, "engine": side_figures("engine"), "peer_figures": side_figures(peer),
        "ratio": side_figures("engine")["ratio"], "variants": {side: side_figures(side) for side in sides[1:-1]}, "parameters": parameters,
        "device": device, "shape": args.shape, "samples": count, "median": args.median,
        "cap": args.cap, "rounds": args.rounds, "useful_tokens_per_epoch": best["engine"]["tokens"],
        **versions(args.device),
    }
    print(f"engine/{peer}: {summary['ratio']:.2f}x useful tokens/s; peak memory "
          f"{summary['engine']['peak_mib']} vs {summary['peer_figures']['peak_mib']} MiB; MFU {summary['engine']['mfu']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
