"""Atomic checkpoints and exact resume.

A checkpoint is a folder `checkpoints/step-NNNNNN/` holding
- the adapter in PEFT format (adapter_model.safetensors + adapter_config.json),
- optimizer.pt: the AdamW state (tensors and numbers only; loaded back with weights_only=True),
- rng.safetensors: the torch CPU (and CUDA) generator states,
- state.json: step, the data-order position, python's RNG state, threads, micro-batch, the config and
  dataset hashes, and the SHA-256 of every other file. It is written last.

It is written into `checkpoints/.tmp-step-NNNNNN`, every file fsynced, then renamed: a folder
without a complete, hash-matching state.json is never chosen, so a kill mid-checkpoint costs only
that checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_tui.engine.fsutil import file_sha256, publish_dir, staged
from forge_tui.errors import BadInput

STATE = "state.json"
PREFIX = "step-"


@dataclass(frozen=True)
class TrainState:
    """What the loop needs besides tensors to continue exactly where it stopped."""

    step: int
    micro_batch_size: int
    grad_accum: int
    threads: int
    config_sha256: str
    dataset_sha256: str
    python_rng: Any
    train_loss: float | None
    eval_loss: float | None


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def adapter_bytes(trainable: list[Any]) -> int:
    """What an adapter takes on disk: its weights in fp32, plus room for its config."""
    return sum(int(p.numel()) for p in trainable) * 4 + 64 * 1024


def checkpoint_bytes(trainable: list[Any]) -> int:
    """What a checkpoint takes on disk: the adapter and AdamW's two moments (fp32 each), plus room
    for the RNG states and state.json."""
    return adapter_bytes(trainable) * 3 + 64 * 1024


def save_checkpoint(root: Path, step: int, model: Any, optimizer: Any, state: TrainState, keep: int) -> Path:
    """Write a complete checkpoint atomically, then drop all but the newest `keep`. A disk without
    room is said before writing, or when the write fails; a failed write leaves nothing behind."""
    root.mkdir(parents=True, exist_ok=True)
    needed = checkpoint_bytes([p for p in model.parameters() if p.requires_grad])
    for stale in root.glob(f".tmp-{PREFIX}*"):  # a runner killed mid-checkpoint (only the lock holder writes here)
        shutil.rmtree(stale, ignore_errors=True)
    with staged(root / f".tmp-{checkpoint_name(step)}", needed, f"the checkpoint at step {step}") as staging:
        _write(staging, model, optimizer, state)
        final = publish_dir(staging, root / checkpoint_name(step))
    _prune(root, keep)
    return final


def _write(staging: Path, model: Any, optimizer: Any, state: TrainState) -> None:
    import torch
    from safetensors.torch import save_file

    model.save_pretrained(staging, safe_serialization=True)
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"torch_cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, staging / "rng.safetensors")
    files = {p.name: file_sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
    record = {**state.__dict__, "python_rng": _python_rng_json(state.python_rng), "files": files}
    (staging / STATE).write_text(json.dumps(record, indent=1))


def _python_rng_json(state: Any) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_rng_tuple(value: list[Any]) -> Any:
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


def _prune(root: Path, keep: int) -> None:
    for stale in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)


def damage(folder: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from (state.json unreadable, a file missing or
    changed since it was written); None when it is complete."""
    try:
        record = json.loads((folder / STATE).read_text())
        files = dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{STATE} is missing or unreadable (the write was cut short)"
    for name, digest in files.items():
        if not (folder / name).is_file():
            return f"{name} is missing"
        if file_sha256(folder / name) != digest:
            return f"{name} changed since it was written"
    return None


def is_complete(folder: Path) -> bool:
    return damage(folder) is None


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary and damaged folders are skipped)."""
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    return [p for p in folders if is_complete(p)]


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def passed_over(root: Path, chosen: Path | None) -> list[tuple[Path, str]]:
    """Damaged checkpoints newer than the one a resume starts from, each with what is wrong."""
    if not root.is_dir():
        return []
    newer = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (chosen is None or p.name > chosen.name))
    return [(folder, why) for folder in newer if (why := damage(folder))]


def read_state(folder: Path) -> TrainState:
    record = json.loads((folder / STATE).read_text())
    record.pop("files")
    record["python_rng"] = _python_rng_tuple(record["python_rng"])
    return TrainState(**record)


def put_adapter_tensors(model: Any, tensors: dict[str, Any]) -> list[str]:
    """Load adapter tensors (PEFT's names) into the model's adapter; the names it does not have,
    which PEFT itself skips silently."""
    from peft import set_peft_model_state_dict

    outcome: Any = set_peft_model_state_dict(model, tensors)
    return list(outcome.unexpected_keys)


def load_adapter_weights(model: Any, weights: Path) -> None:
    """Put an adapter's saved weights (PEFT's safetensors layout) into the model's adapter; BadInput
    when they name tensors the adapter does not have."""
    from safetensors.torch import load_file

    unexpected = put_adapter_tensors(model, load_file(weights))
    if unexpected:
        raise BadInput(f"{weights}: {len(unexpected)} tensor(s) this adapter does not have, e.g. {unexpected[0]} "
                       "(another model or adapter shape)")


def restore(folder: Path, model: Any, optimizer: Any) -> TrainState:
    """Load adapter weights, optimizer and RNG states from a complete checkpoint."""
    import torch
    from safetensors.torch import load_file

    load_adapter_weights(model, folder / "adapter_model.safetensors")
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu"))
    rng = load_file(folder / "rng.safetensors")
    torch.set_rng_state(rng["torch_cpu"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    state = read_state(folder)
    random.setstate(state.python_rng)
    return state
