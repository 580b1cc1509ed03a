"""Work the UI hands to another process so that heavy imports never land in the UI process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from forge_tui.config import Config


def cli_command(config: Config, *args: str) -> list[str]:
    """`python -m forge_tui [--config F] ARGS` for the interpreter running the UI."""
    command = [sys.executable, "-m", "forge_tui"]
    if config.source is not None:
        command += ["--config", str(config.source)]
    return command + list(args)


def run_data_check(config: Config, path: Path) -> dict[str, Any]:
    """`data check --json` in a child process (it loads the tokenizer, which imports transformers)."""
    result = subprocess.run(cli_command(config, "data", "check", str(path), "--json"),
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.stdout.strip():
        return json.loads(result.stdout)
    raise RuntimeError(result.stderr.strip() or f"data check exited with {result.returncode}")
