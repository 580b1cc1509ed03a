"""Peak-memory estimate for a training config, checked against what the device has before loading.

An estimate, not a measurement: weights at their precision, the adapter with its gradients and AdamW
moments, activations for one micro-batch at the longest sample (checkpointed or not), one chunk of
logits (the head never builds them for the whole batch, see loss.py), and the runtime. The free
constants are fitted per device to measured peaks (`Calibration`). On a Jetson, CPU and GPU share
one memory, so the budget is the system's available RAM.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from forge_tui.config import Config
from forge_tui.engine.loss import HEAD_CHUNK
from forge_tui.engine.models import describe_directory
from forge_tui.engine.plan import Plan
from forge_tui.units import GIB, MIB, gib

WARN_SHARE = 0.85  # an estimate above this share of the available memory is tight: warned, not refused
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Calibration:
    """The estimate's free constants on one kind of device, fitted to measured peaks by
    benchmarks/memory_fit.py (the table is in benchmarks/RESULTS.md)."""

    runtime: int          # interpreter, torch and transformers, tokenizer
    activation: float     # x what every layer keeps for backward (uncheckpointed, eager)
    compiled: float       # the same, for compiled layers (fused: fewer intermediates kept)
    layer: float          # x one layer's activations: the layer re-run in backward, the allocator's slack
    head: float           # x the fp32 logits alive at once


# CPU: fitted to peak RSS over 14 shapes of the embedded model (benchmarks/memory_fit.py --fit:
# runtime 532 MiB, activation 1.02, compiled 0.24, layer 19.1, head 0.94), rounded up about 5% so
# that no shape is under its measured peak. `layer` is mostly glibc's allocator: blocks freed in
# backward are kept and fragment, in proportion to the size of one layer's tensors.
# CUDA: not yet measured on a GPU (issue 19): the analytic terms, one layer re-run in backward.
CALIBRATION = {"cpu": Calibration(runtime=600 * MIB, activation=1.05, compiled=0.25, layer=20.0, head=1.0),
               "cuda": Calibration(runtime=GIB, activation=1.0, compiled=1.0, layer=1.0, head=3.0)}


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


@dataclass(frozen=True)
class Workload:
    """What a run's peak memory depends on, besides the model."""

    device: str
    quantized: bool
    dtype: str
    r: int
    micro_batch: int
    seq_len: int
    checkpointing: bool
    rehearsal: bool
    dropout: bool = False   # LoRA dropout: peft keeps a dropped copy of each adapted linear's input
    compiled: bool = False  # compiled decoder layers


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


def device_preset() -> tuple[str, str]:
    """The preset meant for this machine and why, in words; read from files, not torch (the console
    asks at start, and must not wait for torch to import)."""
    if is_jetson():
        return "orin-7b", "chosen for this machine (a Jetson)"
    if Path("/proc/driver/nvidia/version").exists():
        return "standard", "chosen for this machine (NVIDIA GPU)"
    return "quick", "chosen for this machine (no GPU)"


def available_bytes(device: str) -> int:
    if device == "cuda" and not is_jetson():
        import torch

        return int(torch.cuda.mem_get_info()[0])
    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class Terms:
    """The estimate's parts before calibration: bytes known exactly, and the factors the free
    constants of `Calibration` multiply."""

    weights: int
    adapter_and_optimizer: int
    kept_inputs: int      # with checkpointing: each layer's input, re-run in backward
    activation: int       # what every layer keeps for backward, uncheckpointed and eager
    compiled: int         # the same for compiled layers
    layer: int            # one layer's activations
    head: int             # fp32 logits alive at once

    def features(self) -> dict[str, float]:
        """For the fit: the fixed bytes and each free constant's factor."""
        return {"fixed": self.weights + self.adapter_and_optimizer + self.kept_inputs, "runtime": 1.0,
                "activation": self.activation, "compiled": self.compiled, "layer": self.layer, "head": self.head}

    def calibrated(self, constants: Calibration) -> tuple[int, int]:
        """(activations, logits) in bytes under the device's constants."""
        activations = (self.kept_inputs + constants.activation * self.activation + constants.compiled * self.compiled
                       + constants.layer * self.layer)
        return int(activations), int(constants.head * self.head)


def terms(model_dir: Path, parameters: int, work: Workload) -> Terms:
    shape = json.loads((model_dir / "config.json").read_text())
    hidden, layers, vocab, inner = shape["hidden_size"], shape["num_hidden_layers"], shape["vocab_size"], shape["intermediate_size"]
    width = BYTES[work.dtype]
    embeddings = vocab * hidden * (1 if shape.get("tie_word_embeddings") else 2)
    # NF4 linear layers (~0.5 byte + double-quantised scales), embeddings in compute dtype
    weights = int((parameters - embeddings) * 0.53) + embeddings * width if work.quantized else parameters * width
    tokens = work.micro_batch * work.seq_len
    # What one Llama layer keeps for backward per token: norms, q/k/v/o inputs and outputs, the MLP's
    # gate, up and product, and each adapted linear's rank-wide intermediate (and, with dropout, its
    # dropped input: six of hidden width, one of the MLP's).
    per_token_layer = (10 * hidden + 4 * inner + 7 * work.r + (6 * hidden + inner if work.dropout else 0)) * width
    # The head runs over labelled positions in chunks of HEAD_CHUNK: one chunk's fp32 logits live
    # at a time, two with self-distilled rehearsal (the adapted and the base distribution).
    head_rows = min(tokens, HEAD_CHUNK) * (2 if work.rehearsal else 1)
    every_layer = 0 if work.checkpointing else tokens * per_token_layer * layers
    return Terms(weights=weights, adapter_and_optimizer=lora_parameters(shape, work.r) * (4 + 4 + 8),
                 kept_inputs=tokens * layers * hidden * width if work.checkpointing else 0,
                 activation=0 if work.compiled else every_layer, compiled=every_layer if work.compiled else 0,
                 layer=tokens * per_token_layer, head=head_rows * vocab * 4)


def estimate(model_dir: Path, parameters: int, work: Workload) -> MemoryEstimate:
    found = terms(model_dir, parameters, work)
    constants = CALIBRATION[work.device]
    activations, logits = found.calibrated(constants)
    return MemoryEstimate(weights=found.weights, adapter_and_optimizer=found.adapter_and_optimizer,
                          activations=activations, logits=logits, overhead=constants.runtime,
                          available=available_bytes(work.device))


def workload(config: Config, plan: Plan, seq_len: int) -> Workload:
    """The config's run as planned, at `seq_len` tokens per sample."""
    return Workload(device=plan.device, quantized=plan.quantized, dtype=plan.dtype, r=config.lora.r,
                    micro_batch=config.train.micro_batch_size, seq_len=seq_len, checkpointing=plan.checkpointing,
                    rehearsal=bool(config.data.rehearsal), dropout=config.lora.dropout > 0,
                    compiled=plan.compiled)


def estimate_for(config: Config, plan: Plan, model_dir: Path, seq_len: int) -> MemoryEstimate:
    """The estimate for a config's run as planned, at `seq_len` tokens per sample."""
    parameters = describe_directory(model_dir).parameters or 0
    return estimate(model_dir, parameters, workload(config, plan, seq_len))


# The settings an operator can lower to fit, the Workload field each sets, and its floor.
_LEVERS = (("micro_batch_size", "micro_batch", 1), ("max_seq_len", "seq_len", 128), ("lora r", "r", 4))


def _lowered(model_dir: Path, parameters: int, work: Workload, field: str, floor: int, available: int) -> Workload:
    """`work` with `field` halved until the run fits in `available` bytes or the field is at `floor`."""
    while getattr(work, field) > floor:
        work = replace(work, **{field: max(floor, getattr(work, field) // 2)})
        if estimate(model_dir, parameters, work).total <= available:
            break
    return work


def ways_to_fit(model_dir: Path, parameters: int, work: Workload, available: int) -> list[str]:
    """What would bring the run under `available` bytes: each setting lowered alone (halved until it
    fits or reaches its floor) with the memory it saves, "micro_batch_size 2 (saves 1.20 GiB)"; when
    none fits alone, all of them together, or how far even that is from fitting."""
    total = estimate(model_dir, parameters, work).total
    found, together = [], work
    for setting, field, floor in _LEVERS:
        if getattr(work, field) <= floor:
            continue
        alone = _lowered(model_dir, parameters, work, field, floor, available)
        together = replace(together, **{field: getattr(alone, field)})
        lowered = estimate(model_dir, parameters, alone).total
        short = "" if lowered <= available else f", still {gib(lowered - available, 2)} GiB short"
        found.append(f"{setting} {getattr(alone, field)} (saves {gib(total - lowered, 2)} GiB{short})")
    if work.device == "cuda" and not work.quantized:
        lowered = estimate(model_dir, parameters, replace(work, quantized=True)).total
        found.append(f'quantization "nf4" (saves {gib(total - lowered, 2)} GiB)')
    if found and all("short" in way for way in found):
        combined = estimate(model_dir, parameters, together).total
        found.append(f"all of these together (saves {gib(total - combined, 2)} GiB)" if combined <= available else
                     f"a smaller model: even all of these together leave it {gib(combined - available, 2)} GiB short")
    return found


def advice(config: Config, plan: Plan, model_dir: Path, seq_len: int, found: MemoryEstimate) -> str | None:
    """What would make a run that does not fit fit, "to fit, set A, or B"; None when it fits."""
    if found.verdict != "fail":
        return None
    parameters = describe_directory(model_dir).parameters or 0
    ways = ways_to_fit(model_dir, parameters, workload(config, plan, seq_len), found.available)
    return f"to fit, set {', or '.join(ways)}" if ways else "a smaller model or a device with more memory"


def refusal(found: MemoryEstimate, advised: str) -> str:
    """The refusal of a run that does not fit: the estimate, then the advice."""
    return f"not enough memory: {found.describe()}; {advised}"
