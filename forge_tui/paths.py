"""Where Forge TUI keeps its files, per platformdirs, each overridable by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_log_path

APP_NAME = "forge-tui"


def cache_dir() -> Path:
    """Provisioned models and downloads: `$FORGE_TUI_CACHE_DIR` or the user cache directory."""
    override = os.environ.get("FORGE_TUI_CACHE_DIR")
    return Path(override) if override else user_cache_path(APP_NAME)


def models_dir() -> Path:
    return cache_dir() / "models"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def log_dir() -> Path:
    """The console's own log (what failed inside it, with tracebacks): `$FORGE_TUI_LOG_DIR` or the
    user log directory (~/.local/state/forge-tui/log on Linux)."""
    override = os.environ.get("FORGE_TUI_LOG_DIR")
    return Path(override) if override else user_log_path(APP_NAME)


def default_config_file() -> Path:
    """`$FORGE_TUI_CONFIG` or config.toml in the user config directory (it need not exist)."""
    override = os.environ.get("FORGE_TUI_CONFIG")
    return Path(override) if override else user_config_path(APP_NAME) / "config.toml"


def project_root() -> Path:
    """The source checkout (holds sample_data/ and themes/ next to the package)."""
    return Path(__file__).resolve().parent.parent


def sample_data_dir() -> Path:
    return project_root() / "sample_data"
