"""Offline and no-telemetry settings for the Hugging Face stack.

They must be in the environment before `transformers` or `huggingface_hub` is first imported: both
read them at import time. `forge_tui/__init__.py` calls `enforce_offline_environment` on import.
"""

from __future__ import annotations

import os

OFFLINE_VARIABLES: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline_environment() -> None:
    """Set every offline/no-telemetry variable, overriding values that would re-enable the network."""
    os.environ.update(OFFLINE_VARIABLES)


def offline_state() -> dict[str, bool]:
    """Which offline variables are in force in this process (for `doctor` and tests)."""
    return {name: os.environ.get(name) == value for name, value in OFFLINE_VARIABLES.items()}
