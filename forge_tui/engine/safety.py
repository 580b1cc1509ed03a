"""What may be loaded: weights in safetensors only, no custom code, and an adapter that fits its base.

Pickle weights (.bin, .pt, .pth) run code when they are loaded, so they are never opened: they are
refused with the way to convert them on a trusted machine. A config that names custom code
(`auto_map`) would make transformers import Python from the model folder (or fetch it); it is
refused, and `trust_remote_code` is never set anywhere. An adapter is checked against the base it is
attached to, tensor by tensor, before peft sees it: peft would attach a mismatched one silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forge_tui.errors import BadInput

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
CONVERT_HINT = ("convert it on a trusted machine: load it there with transformers and save it with "
                "save_pretrained(folder, safe_serialization=True), then copy the .safetensors files")
# Keys that make transformers or peft import code from the folder, or fetch it
CODE_KEYS = {"config.json": ("auto_map", "custom_pipelines", "trust_remote_code"),
             "tokenizer_config.json": ("auto_map", "trust_remote_code"),
             "adapter_config.json": ("auto_mapping", "auto_map", "trust_remote_code")}


def pickle_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []


def custom_code(folder: Path) -> str | None:
    """Why the folder's configs would run or fetch code, or None."""
    for name, keys in CODE_KEYS.items():
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"{path}: unreadable ({exc})"
        if not isinstance(data, dict):
            return f"{path}: not a JSON object"
        named = [key for key in keys if data.get(key)]
        if named:
            return f"{path}: names custom code ({', '.join(named)}); forge-tui never runs code from a model folder"
    if any(folder.glob("*.py")):
        return f"{folder}: holds Python files (custom model code); forge-tui never runs code from a model folder"
    return None


def check_adapter_files(adapter: Path) -> Path:
    """The adapter's safetensors file, after refusing pickle weights and custom code."""
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        pickles = pickle_files(adapter)
        if pickles:
            raise BadInput(f"{pickles[0]}: pickle weights are refused (loading them can run code); {CONVERT_HINT}")
        raise BadInput(f"{adapter}: no adapter_model.safetensors")
    reason = custom_code(adapter)
    if reason:
        raise BadInput(reason)
    return weights


def check_adapter(adapter: Path, model: Any) -> None:
    """Every LoRA tensor must fit a linear layer of this base model, in a floating dtype, finite."""
    from safetensors import safe_open

    weights = check_adapter_files(adapter)
    modules = dict(model.named_modules())
    with safe_open(str(weights), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensor = tensors.get_tensor(key)
            _check_tensor(adapter, key, tensor, modules)


def _check_tensor(adapter: Path, key: str, tensor: Any, modules: dict[str, Any]) -> None:
    if not tensor.is_floating_point():
        raise BadInput(f"{adapter}: {key} has dtype {tensor.dtype}, not a floating-point adapter weight")
    if not bool(tensor.isfinite().all()):
        raise BadInput(f"{adapter}: {key} holds NaN or infinite values: the adapter is damaged")
    if ".lora_" not in key:
        return
    name = key.removeprefix("base_model.model.").split(".lora_")[0]
    layer = modules.get(name)
    if layer is None or not hasattr(layer, "in_features"):
        raise BadInput(f"{adapter}: {key} has no matching linear layer {name!r} in the base model: "
                       "this adapter was trained on another model")
    shape = list(tensor.shape)
    expected = [shape[0], layer.in_features] if ".lora_A." in key else [layer.out_features, shape[1]]
    if shape != expected:
        raise BadInput(f"{adapter}: {key} has shape {shape}, the base model's {name} needs {expected}: "
                       "this adapter was trained on another model")
