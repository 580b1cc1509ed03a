"""The configuration's shape: one frozen dataclass per TOML table, each field with a one-line doc
(`doc=` in the field metadata; the README's config table is written from them), each table's own
checks (`problems`), and the presets laid under the config file."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge_tui.engine.formats import MAPPABLE
from forge_tui.units import MIB


def _doc(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class ModelsConfig:
    """Models beyond the embedded default."""

    paths: tuple[str, ...] = _doc(
        "Local model directories (safetensors) to offer besides the embedded default.", factory=tuple
    )


@dataclass(frozen=True)
class DataConfig:
    """Dataset discovery and preparation."""

    dirs: tuple[str, ...] = _doc("Folders to browse for datasets besides sample_data/.", factory=tuple)
    eval_fraction: float = _doc("Share of samples held out for eval loss (split by content hash).", 0.1)
    max_seq_len: int = _doc("Tokens per sample; longer samples are truncated (and reported).", 1024)
    max_record_mib: int = _doc("Largest single record a reader accepts, in MiB (bounds memory).", 8)
    rehearsal: str = _doc('General conversations mixed into training against forgetting: "" (none), "general" '
                          "(the built-in set) or a file.", "")
    rehearsal_share: float = _doc("Share of the training split made of rehearsal conversations (repeated as needed).", 0.25)
    rehearsal_answers: str = _doc("base: the base model's own answers to the rehearsal questions, scored by KL from the base "
                                  "model's distribution (self-distillation); "
                                  "file: the answers written in the file.", "base")
    screening: str = _doc('What the screening findings (secrets, personal data, near duplicates, outliers, injections, '
                          'triggers) do to training: "warn" (shown; the operator decides) or "strict" (errors: '
                          'the run refuses the dataset).', "warn")
    columns: dict[str, str] = _doc(  # noqa: RUF009 - _doc gives a default_factory, not a shared dict
        'Column mapping for files in no known format: {their key = "a field Forge reads"}, e.g. '
        '{ question = "instruction", answer = "output" } (recorded in the manifest).', factory=dict)
    rehearsal_weight: float = _doc("Weight of the self-distilled rehearsal's KL term against the domain's cross-entropy "
                                   "(per token; higher holds general behaviour closer to the base model).", 1.0)

    @property
    def max_record_bytes(self) -> int:
        return self.max_record_mib * MIB

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not 0.0 <= self.eval_fraction < 0.5:
            found.append(("eval_fraction", f"must be in [0, 0.5), got {self.eval_fraction}"))
        if not 16 <= self.max_seq_len <= 131072:
            found.append(("max_seq_len", f"must be between 16 and 131072, got {self.max_seq_len}"))
        if not 1 <= self.max_record_mib <= 1024:
            found.append(("max_record_mib", f"must be between 1 and 1024, got {self.max_record_mib}"))
        _choice(found, "rehearsal_answers", self.rehearsal_answers, ("base", "file"))
        _choice(found, "screening", self.screening, ("warn", "strict"))
        if not 0.0 < self.rehearsal_weight <= 100.0:
            found.append(("rehearsal_weight", f"must be in (0, 100], got {self.rehearsal_weight}"))
        if not 0.0 < self.rehearsal_share < 0.9:
            found.append(("rehearsal_share", f"must be in (0, 0.9), got {self.rehearsal_share}"))
        unknown = sorted(f"{key} = {target!r}" for key, target in self.columns.items() if target not in MAPPABLE)
        if unknown:
            found.append(("columns", f"{', '.join(unknown)}: a column maps to one of {', '.join(MAPPABLE)}"))
        shared = sorted(target for target, count in Counter(self.columns.values()).items() if count > 1)
        if shared:
            found.append(("columns", f"two columns map to {', '.join(map(repr, shared))}; one field is read from one column"))
        return found


CHOICES_QUANT = ("auto", "nf4", "none")
CHOICES_DTYPE = ("auto", "fp32", "bf16", "fp16")
CHOICES_SWITCH = ("auto", "on", "off")
CHOICES_DEVICE = ("auto", "cpu", "cuda")


def _choice(found: list[tuple[str, str]], key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        found.append((key, f"must be one of {', '.join(options)}, got {value!r}"))


@dataclass(frozen=True)
class ModelConfig:
    """The base model and how it is loaded."""

    name: str = _doc("Embedded default name, a configured folder's name, or a model folder path.", "smollm2-135m-instruct")
    device: str = _doc("auto (CUDA if present), cpu or cuda.", "auto")
    quantization: str = _doc("auto (4-bit NF4 on CUDA, none on CPU), nf4 or none.", "auto")
    compute_dtype: str = _doc("auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16.", "auto")
    gradient_checkpointing: str = _doc("auto (on for CUDA), on or off.", "auto")
    compile: str = _doc("torch.compile the decoder layers: auto (on for CUDA where triton is installed; on a CPU "
                        "the compile costs more than a short run saves), on or off.", "auto")

    def problems(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        _choice(found, "compile", self.compile, CHOICES_SWITCH)
        _choice(found, "device", self.device, CHOICES_DEVICE)
        _choice(found, "quantization", self.quantization, CHOICES_QUANT)
        _choice(found, "compute_dtype", self.compute_dtype, CHOICES_DTYPE)
        _choice(found, "gradient_checkpointing", self.gradient_checkpointing, CHOICES_SWITCH)
        if not self.name.strip():
            found.append(("name", "must not be empty"))
        return found


@dataclass(frozen=True)
class LoraConfig:
    """The low-rank adapter."""

    r: int = _doc("Rank of the adapter matrices.", 16)
    alpha: int = _doc("Scaling numerator (the update is scaled by alpha / r).", 32)
    dropout: float = _doc("Dropout on the adapter's input.", 0.05)
    target_modules: tuple[str, ...] = _doc('Modules to adapt; "all-linear" means every linear layer but the head.',
                                           factory=lambda: ("all-linear",))

    def problems(self) -> list[tuple[str, str]]:
        found = _failed(self, [("r", 1 <= self.r <= 1024, "must be between 1 and 1024"),
                               ("alpha", self.alpha >= 1, "must be at least 1"),
                               ("dropout", 0.0 <= self.dropout < 1.0, "must be in [0, 1)")])
        if not self.target_modules:
            found.append(("target_modules", "must name at least one module"))
        return found


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation."""

    dataset: str = _doc("Training data file or folder (--dataset overrides).", "")
    epochs: float = _doc("Passes over the training split (ignored when max_steps > 0).", 3.0)
    max_steps: int = _doc("Optimizer steps to run; 0 means as many as `epochs` takes.", 0)
    micro_batch_size: int = _doc("Samples per forward pass (halved automatically on CUDA out-of-memory).", 4)
    grad_accum: int = _doc("Micro-batches per optimizer step; effective batch = micro_batch_size x grad_accum.", 4)
    learning_rate: float = _doc("Peak learning rate (AdamW).", 2e-4)
    warmup_ratio: float = _doc("Share of steps spent warming up linearly from 0.", 0.05)
    min_lr_ratio: float = _doc("The cosine decays to this share of the peak.", 0.1)
    weight_decay: float = _doc("AdamW weight decay on the adapter.", 0.0)
    max_grad_norm: float = _doc("Gradient clipping; 0 turns it off.", 1.0)
    seed: int = _doc("One seed for adapter init, dropout and data order.", 42)
    eval_every: int = _doc("Steps between eval-loss passes on the held-out split; 0 = only at the end.", 50)
    save_every: int = _doc("Steps between checkpoints; 0 = only at the end.", 50)
    keep_checkpoints: int = _doc("How many recent checkpoints to keep.", 3)
    threads: int = _doc("CPU threads for torch; 0 = all cores. Exact resume needs the same count.", 0)

    def problems(self) -> list[tuple[str, str]]:
        checks = [
            ("epochs", self.epochs > 0, "must be above 0"),
            ("max_steps", self.max_steps >= 0, "must be 0 or more"),
            ("micro_batch_size", 1 <= self.micro_batch_size <= 4096, "must be between 1 and 4096"),
            ("grad_accum", 1 <= self.grad_accum <= 4096, "must be between 1 and 4096"),
            ("learning_rate", 0 < self.learning_rate < 1, "must be in (0, 1)"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "must be in [0, 1]"),
            ("weight_decay", self.weight_decay >= 0, "must be 0 or more"),
            ("max_grad_norm", self.max_grad_norm >= 0, "must be 0 or more"),
            ("seed", 0 <= self.seed < 2**32, "must be in [0, 2**32)"),
            ("eval_every", self.eval_every >= 0, "must be 0 or more"),
            ("save_every", self.save_every >= 0, "must be 0 or more"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "must be at least 1"),
            ("threads", 0 <= self.threads <= 1024, "must be between 0 and 1024"),
        ]
        return _failed(self, checks)


def _failed(section: Any, checks: list[tuple[str, bool, str]]) -> list[tuple[str, str]]:
    """(key, ok, message) checks -> the problems of those that failed, with the value found."""
    return [(key, f"{message}, got {getattr(section, key)}") for key, ok, message in checks if not ok]


TELEMETRY_SOURCES = ("auto", "jtop", "nvml", "sysfs")
REPLAY_PREFIX = "replay:"


def replay_file(source: str) -> Path | None:
    """The recording a `replay:FILE` telemetry source names; None for any other source."""
    if not source.startswith(REPLAY_PREFIX):
        return None
    name = source[len(REPLAY_PREFIX):].strip()
    return Path(name).expanduser() if name else None


@dataclass(frozen=True)
class TelemetryConfig:
    """Where device readings come from."""

    source: str = _doc("auto (jtop, then NVML, then sysfs), jtop, nvml, sysfs, or replay:FILE (a recording).", "auto")
    interval: float = _doc("Seconds between samples.", 1.0)
    replay_speed: float = _doc("Playback speed of a replay: source (2 = twice as fast).", 1.0)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.source not in TELEMETRY_SOURCES and replay_file(self.source) is None:
            found.append(("source", f"must be one of {', '.join(TELEMETRY_SOURCES)} or replay:FILE, got {self.source!r}"))
        if not 0.05 <= self.interval <= 60:
            found.append(("interval", f"must be between 0.05 and 60 seconds, got {self.interval}"))
        if not 0 < self.replay_speed <= 1000:
            found.append(("replay_speed", f"must be in (0, 1000], got {self.replay_speed}"))
        return found


@dataclass(frozen=True)
class ThermalConfig:
    """The thermal guard: pause training when the device runs out of thermal headroom."""

    guard: bool = _doc("Pause the run when headroom falls below pause_below; resume above resume_above.", True)
    pause_below: float = _doc("Pause when the smallest headroom to a throttle trip point falls below this (°C).", 5.0)
    resume_above: float = _doc("Resume when the headroom is back above this (°C); above pause_below.", 10.0)
    max_pause_minutes: float = _doc("Stop the run cleanly after pausing this long; 0 = wait as long as it takes.", 0.0)

    def problems(self) -> list[tuple[str, str]]:
        return _failed(self, [("pause_below", 0 <= self.pause_below <= 100, "must be between 0 and 100 °C"),
                              ("resume_above", self.resume_above > self.pause_below, f"must be above pause_below ({self.pause_below})"),
                              ("max_pause_minutes", self.max_pause_minutes >= 0, "must be 0 or more")])


@dataclass(frozen=True)
class BenchConfig:
    """The base-vs-tuned benchmark."""

    max_new_tokens: int = _doc("Longest answer generated per item (greedy).", 48)
    batch_size: int = _doc("Items answered together.", 16)
    bootstrap: int = _doc("Resamples for the 95% confidence interval.", 1000)

    def problems(self) -> list[tuple[str, str]]:
        return _failed(self, [("max_new_tokens", 1 <= self.max_new_tokens <= 4096, "must be between 1 and 4096"),
                              ("batch_size", 1 <= self.batch_size <= 1024, "must be between 1 and 1024"),
                              ("bootstrap", 100 <= self.bootstrap <= 100000, "must be between 100 and 100000")])


@dataclass(frozen=True)
class UiConfig:
    """The console."""

    theme: str = _doc("A theme from themes/*.toml: forge-dark, forge-high-contrast (sunlight) or forge-night "
                      "(red, keeps night vision); the command palette switches themes for the session.", "forge-dark")


@dataclass(frozen=True)
class RunsConfig:
    """Where runs live."""

    dir: str = _doc("Folder holding run directories; empty = the user data folder's forge-tui/runs.", "")


@dataclass(frozen=True)
class Config:
    """The whole configuration; each attribute is one TOML table."""

    model: ModelConfig = field(default_factory=ModelConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runs: RunsConfig = field(default_factory=RunsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    thermal: ThermalConfig = field(default_factory=ThermalConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    preset: str = "standard"
    source: Path | None = None

    def sections(self) -> dict[str, dict[str, Any]]:
        """The settings as plain TOML-shaped data (what a run records and hashes)."""
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}


def _plain(table: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in table.items()}


SECTIONS: dict[str, type] = {
    "model": ModelConfig, "models": ModelsConfig, "data": DataConfig,
    "lora": LoraConfig, "train": TrainConfig, "runs": RunsConfig,
    "telemetry": TelemetryConfig, "thermal": ThermalConfig, "bench": BenchConfig, "ui": UiConfig,
}

# Presets are layers under the config file: defaults < preset < file < command-line flags.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # A CPU demo on the embedded default: a few minutes on 2 cores, eval loss visibly lower.
    "quick": {
        "data": {"max_seq_len": 256, "rehearsal": "general", "rehearsal_share": 0.3, "rehearsal_weight": 10.0},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "train": {"epochs": 2.0, "micro_batch_size": 8, "grad_accum": 1, "learning_rate": 1e-3,
                  "warmup_ratio": 0.05, "eval_every": 20, "save_every": 20, "keep_checkpoints": 2},
    },
    # The defaults: a sound starting point on a GPU.
    "standard": {},
    # A 7B model on a Jetson AGX Orin 64GB: 4-bit NF4, bf16 compute, checkpointed activations.
    "orin-7b": {
        "model": {"device": "cuda", "quantization": "nf4", "compute_dtype": "bf16", "gradient_checkpointing": "on"},
        "data": {"max_seq_len": 1024, "rehearsal": "general"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
        "train": {"epochs": 3.0, "micro_batch_size": 4, "grad_accum": 4, "learning_rate": 2e-4,
                  "eval_every": 25, "save_every": 25, "keep_checkpoints": 3},
    },
}
