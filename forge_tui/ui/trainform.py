"""The Train form's fields and their validation (no textual here: unit-testable).

Each field is one config setting. What the operator types is converted to the setting's type, laid
over the chosen preset and the config file exactly as `forge-tui train --set` would, and validated
by the config loader itself, so the form can never accept what the runner would refuse. A launch
passes the same settings to `forge-tui train --set KEY=VALUE`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_tui.config import CHOICES_QUANT, SECTIONS, Config, ConfigError, load_config, toml_value

SWITCH = ("on", "off")


@dataclass(frozen=True)
class Field:
    key: str                             # "section.name" in the config
    label: str
    kind: type | tuple[str, ...]         # int, float, or the allowed words

    @property
    def id(self) -> str:
        """A widget id: `lora.r` -> `f-lora-r`."""
        return "f-" + self.key.replace(".", "-").replace("_", "-")


FIELDS = (
    Field("model.name", "model", str),
    Field("lora.r", "LoRA rank", int),
    Field("lora.alpha", "LoRA alpha", int),
    Field("lora.dropout", "LoRA dropout", float),
    Field("train.learning_rate", "learning rate", float),
    Field("train.epochs", "epochs", float),
    Field("train.max_steps", "max steps (0: epochs)", int),
    Field("data.max_seq_len", "max sequence length", int),
    Field("train.micro_batch_size", "micro-batch size", int),
    Field("train.grad_accum", "gradient accumulation", int),
    Field("model.quantization", "quantisation", CHOICES_QUANT),
    Field("thermal.guard", "thermal guard", SWITCH),
    Field("thermal.pause_below", "pause below (°C)", float),
    Field("thermal.resume_above", "resume above (°C)", float),
)


def field_doc(key: str) -> str:
    """The setting's one-line documentation (the README's config table says the same)."""
    section, name = key.split(".")
    found = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    return str(found[name].metadata.get("doc", ""))


def setting(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def shown(value: Any) -> str:
    """A setting as the form shows it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def form_values(config: Config) -> dict[str, str]:
    return {f.key: shown(setting(config, f.key)) for f in FIELDS}


def _convert(field: Field, text: str) -> Any:
    """The typed value, or ValueError with what the operator should type."""
    text = text.strip()
    if field.kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("a whole number") from None
    if field.kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("a number") from None
    if isinstance(field.kind, tuple) and text not in field.kind:
        raise ValueError(f"one of {', '.join(field.kind)}")
    if field.kind == SWITCH:
        return text == "on"
    return text


@dataclass
class Checked:
    """The form checked: the config it makes, or why not (per field, and the rest)."""

    overrides: dict[str, dict[str, Any]]
    config: Config | None
    errors: dict[str, str]
    general: list[str]

    @property
    def ok(self) -> bool:
        return self.config is not None

    def settings(self) -> list[str]:
        """`--set` arguments for `forge-tui train`, values written as TOML."""
        return [f"--set={section}.{key}={toml_value(value)}"
                for section, table in self.overrides.items() for key, value in table.items()]


def check_form(values: dict[str, str], config_file: Path | None, preset: str) -> Checked:
    overrides: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for field in FIELDS:
        try:
            value = _convert(field, values.get(field.key, ""))
        except ValueError as exc:
            errors[field.key] = f"expected {exc}"
            continue
        section, name = field.key.split(".")
        overrides.setdefault(section, {})[name] = value
    if errors:
        return Checked(overrides, None, errors, [])
    try:
        config = load_config(config_file, preset, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            if problem.key in {f.key for f in FIELDS}:
                errors[problem.key] = problem.message.split(": ", 1)[-1]
        return Checked(overrides, None, errors, [str(p) for p in exc.problems if p.key not in errors])
    return Checked(overrides, config, {}, [])
