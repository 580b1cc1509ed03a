"""How this machine runs a model: the device and precision plan resolved from the `auto` settings,
the base model loaded for it, the adapter added, and the decoder layers compiled.

CUDA: 4-bit NF4 QLoRA through bitsandbytes (double quantisation, bf16 compute) with gradient
checkpointing. CPU: fp32 LoRA (bf16 matmuls are ~25x slower on CPUs without native bf16). Training,
the benchmark, the export and the doctor all load models through here, so they agree on the plan.
Nothing here imports torch at module level: the console reads `Plan` records from dry runs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forge_tui.config import Config
from forge_tui.engine.loss import base_model
from forge_tui.engine.models import load_causal_lm
from forge_tui.errors import BadInput


@dataclass(frozen=True)
class Plan:
    """How this machine will run the config: resolved from the `auto` settings."""

    device: str
    quantized: bool
    dtype: str
    checkpointing: bool
    compiled: bool = False

    @property
    def mode(self) -> str:
        return "qlora-nf4" if self.quantized else "lora"

    @property
    def precision(self) -> str:
        precision = f"nf4 weights, {self.dtype} compute" if self.quantized else self.dtype
        return precision + (", compiled" if self.compiled else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Plan:
        return cls(**record)


def resolve_plan(config: Config) -> Plan:
    import torch

    model = config.model
    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if model.device == "auto" else model.device
    if device == "cuda" and not cuda:
        raise BadInput("[model] device = cuda, but torch sees no CUDA device")
    quantized = model.quantization == "nf4" or (model.quantization == "auto" and device == "cuda")
    dtype = ("bf16" if device == "cuda" else "fp32") if model.compute_dtype == "auto" else model.compute_dtype
    checkpointing = model.gradient_checkpointing == "on" or (model.gradient_checkpointing == "auto" and device == "cuda")
    compiled = model.compile == "on" or (model.compile == "auto" and device == "cuda" and has_triton())
    return Plan(device, quantized, dtype, checkpointing, compiled)


def torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def load_base(path: Path, plan: Plan) -> Any:
    """The base model as the plan says: NF4 4-bit (bitsandbytes) or plain weights, on its device."""
    if plan.quantized:
        from transformers import BitsAndBytesConfig

        nf4 = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
               "bnb_4bit_compute_dtype": torch_dtype(plan.dtype)}
        quant = BitsAndBytesConfig(**nf4)  # type: ignore[no-untyped-call]
        device_map = {"": 0} if plan.device == "cuda" else {"": "cpu"}
        return load_causal_lm(path, quantization_config=quant, dtype=torch_dtype(plan.dtype), device_map=device_map)
    return load_causal_lm(path, dtype=torch_dtype(plan.dtype)).to(plan.device)


def load_for_training(path: Path, plan: Plan) -> Any:
    """The base model ready for an adapter: frozen, checkpointed as planned, in train mode.

    No `prepare_model_for_kbit_training`: it upcasts norms, embeddings and head to fp32, which puts
    the whole residual stream and attention in fp32 (twice the activation memory, no bf16 attention
    kernels). Here compute stays in the plan's dtype; the adapter's own weights are fp32 (peft's
    default), so its updates keep their precision.
    """
    model = load_base(path, plan)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if plan.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()  # from_pretrained returns eval mode; checkpointing is silently off in it
    return model


def lora_config(config: Config) -> Any:
    """PEFT's LoraConfig for the config's [lora] section."""
    from peft import LoraConfig

    lora = config.lora
    targets: Any = "all-linear" if list(lora.target_modules) == ["all-linear"] else list(lora.target_modules)
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")


def add_adapter(model: Any, config: Config) -> Any:
    """A fresh LoRA adapter as the config says, its initial weights drawn from the run's seed."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(config.train.seed)
    model = get_peft_model(model, lora_config(config))
    model.train()
    return model


def has_triton() -> bool:
    """Inductor's GPU code generator; some Jetson torch builds ship without it."""
    return importlib.util.find_spec("triton") is not None


def compile_layers(model: Any) -> None:
    """torch.compile each decoder layer with dynamic shapes (batch lengths vary). The layers share
    one code object and their parameters are graph inputs, so one compile serves them all; it
    fuses the norms, activations and casts between the matmuls, and cuts the Python overhead of
    the adapter's many small modules, which otherwise bounds a GPU step. A layer that fails to
    compile runs eagerly (suppress_errors) rather than ending the run."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    for layer in base_model(model).get_decoder().layers:
        layer.compile(dynamic=True)


def peak_memory(device: str) -> int:
    """The run's peak memory so far: CUDA's max allocated on the device, or the process's peak RSS."""
    import resource

    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def device_name(plan: Plan) -> str:
    """What the run_started event names as the device: the GPU's name, or "cpu"."""
    import torch

    return str(torch.cuda.get_device_name(0)) if plan.device == "cuda" else "cpu"


def load_for_answers(config: Config, adapter: Path | None) -> tuple[Any, Any, str]:
    """The configured base model as the plan loads it, in eval mode, with `adapter` attached (checked
    against it first) when one is given; its tokenizer; its device. The benchmark and chat use this."""
    import os

    import torch

    from forge_tui.engine.models import load_tokenizer, quiet_libraries, resolve_model
    from forge_tui.engine.safety import check_adapter

    quiet_libraries()  # before peft imports bitsandbytes
    torch.set_num_threads(config.train.threads or os.cpu_count() or 1)
    plan = resolve_plan(config)
    model_dir = resolve_model(config.model.name, config.models.paths)
    model = load_base(model_dir, plan)
    if adapter is not None:
        from peft import PeftModel

        check_adapter(adapter, model)
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model, load_tokenizer(model_dir), plan.device

