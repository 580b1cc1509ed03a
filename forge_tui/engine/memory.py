"""Peak-memory estimate for a training config, checked against what the device has before loading.

An estimate, not a measurement: weights at their precision, the adapter with its gradients and AdamW
moments, activations for one micro-batch at max_seq_len (checkpointed or not), the logits and their
gradient, and a fixed runtime overhead. On a Jetson, CPU and GPU share one memory, so the budget is
the system's available RAM.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from forge_tui.config import Config
from forge_tui.engine.models import describe_directory
from forge_tui.engine.plan import Plan
from forge_tui.units import GIB, MIB, gib

WARN_SHARE = 0.85  # an estimate above this share of the available memory is tight: warned, not refused
RUNTIME_OVERHEAD = {"cpu": 400 * MIB, "cuda": GIB}
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    adapter_and_optimizer: int
    activations: int
    logits: int
    overhead: int
    available: int

    @property
    def total(self) -> int:
        return self.weights + self.adapter_and_optimizer + self.activations + self.logits + self.overhead

    @property
    def verdict(self) -> str:
        """ok, warn (over WARN_SHARE of what is available) or fail (over all of it)."""
        if self.total > self.available:
            return "fail"
        return "warn" if self.total > WARN_SHARE * self.available else "ok"

    def describe(self) -> str:
        parts = ", ".join(f"{k.replace('_', ' ')} {gib(v, 2)}" for k, v in asdict(self).items() if k != "available")
        return f"estimated peak {gib(self.total, 2)} GiB ({parts} GiB) against {gib(self.available, 2)} GiB available"


def lora_parameters(shape: dict[str, Any], r: int) -> int:
    """Adapter parameters for rank r on every linear layer of a Llama-style decoder."""
    hidden = shape["hidden_size"]
    inner = shape["intermediate_size"]
    heads = shape["num_attention_heads"]
    kv = shape.get("num_key_value_heads", heads) * (hidden // heads)
    pairs = [(hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden), (hidden, inner), (hidden, inner), (inner, hidden)]
    return int(shape["num_hidden_layers"]) * sum(int(r * (a + b)) for a, b in pairs)


def is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists()


def available_bytes(device: str) -> int:
    if device == "cuda" and not is_jetson():
        import torch

        return int(torch.cuda.mem_get_info()[0])
    return int(psutil.virtual_memory().available)


def estimate(model_dir: Path, parameters: int, *, device: str, quantized: bool, dtype: str, r: int,
             micro_batch: int, seq_len: int, checkpointing: bool) -> MemoryEstimate:
    shape = json.loads((model_dir / "config.json").read_text())
    hidden, layers, vocab = shape["hidden_size"], shape["num_hidden_layers"], shape["vocab_size"]
    width = BYTES[dtype]
    embeddings = vocab * hidden * (1 if shape.get("tie_word_embeddings") else 2)
    # NF4 linear layers (~0.5 byte + double-quantised scales), embeddings in compute dtype
    weights = int((parameters - embeddings) * 0.53) + embeddings * width if quantized else parameters * width
    adapter = lora_parameters(shape, r) * (4 + 4 + 8)
    tokens = micro_batch * seq_len
    per_layer = (2 if checkpointing else 18) * hidden * width + (0 if checkpointing else 3 * shape["intermediate_size"] * width)
    activations = tokens * layers * per_layer + (tokens * 18 * hidden * width if checkpointing else 0)
    logits = tokens * vocab * (width + 4 + 4)
    return MemoryEstimate(weights, adapter, activations, logits, RUNTIME_OVERHEAD[device], available_bytes(device))


def estimate_for(config: Config, plan: Plan, model_dir: Path, seq_len: int) -> MemoryEstimate:
    """The estimate for a config's run as planned, at `seq_len` tokens per sample."""
    parameters = describe_directory(model_dir).parameters or 0
    return estimate(model_dir, parameters, device=plan.device, quantized=plan.quantized, dtype=plan.dtype,
                    r=config.lora.r, micro_batch=config.train.micro_batch_size, seq_len=seq_len,
                    checkpointing=plan.checkpointing)
