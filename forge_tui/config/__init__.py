"""Forge's configuration: the tables and presets (`sections`) and how a TOML file, a preset and the
command line's flags become one validated `Config` (`loading`)."""

from forge_tui.config.loading import (
    ConfigError,
    ConfigProblem,
    TOMLDecodeError,
    config_from_sections,
    load_config,
    parse_assignments,
    parse_config,
    toml_loads,
    toml_value,
)
from forge_tui.config.sections import (
    CHOICES_DEVICE,
    CHOICES_DTYPE,
    CHOICES_QUANT,
    CHOICES_SWITCH,
    PRESETS,
    REPLAY_PREFIX,
    SECTIONS,
    TELEMETRY_SOURCES,
    BenchConfig,
    Config,
    DataConfig,
    LoraConfig,
    ModelConfig,
    ModelsConfig,
    RunsConfig,
    TelemetryConfig,
    ThermalConfig,
    TrainConfig,
    UiConfig,
    replay_file,
)
from forge_tui.engine.formats import MAPPABLE  # the fields `[data] columns` maps to

__all__ = [
    "CHOICES_DEVICE", "CHOICES_DTYPE", "CHOICES_QUANT", "CHOICES_SWITCH", "MAPPABLE", "PRESETS", "REPLAY_PREFIX", "SECTIONS",
    "TELEMETRY_SOURCES", "BenchConfig", "Config", "ConfigError", "ConfigProblem", "DataConfig", "LoraConfig", "ModelConfig",
    "ModelsConfig", "RunsConfig", "TOMLDecodeError", "TelemetryConfig", "ThermalConfig", "TrainConfig", "UiConfig",
    "config_from_sections", "load_config", "parse_assignments", "parse_config", "replay_file", "toml_loads", "toml_value",
]
