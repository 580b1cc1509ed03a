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


def run_cli(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(config, *args), capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _json_answer(config: Config, *args: str) -> dict[str, Any]:
    """A `--json` command's answer (printed even when it exits 2 for bad input)."""
    result = run_cli(config, *args, "--json")
    if result.stdout.strip():
        return json.loads(result.stdout)
    raise RuntimeError(last_line(result))


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """What a finished command said last: its error, or its last line of output."""
    text = (result.stdout if result.returncode == 0 else result.stderr or result.stdout).strip()
    return text.splitlines()[-1].removeprefix("forge-tui: error: ") if text else f"exited with {result.returncode}"


def run_data_check(config: Config, path: Path) -> dict[str, Any]:
    """`data check --json` (it loads the tokenizer, which imports transformers)."""
    return _json_answer(config, "data", "check", str(path))


def preflight(config: Config, dataset: Path, preset: str, settings: list[str]) -> dict[str, Any]:
    """`train --dry-run --json`: the dataset's check, the plan and the memory estimate (torch decides
    the device, so this is a child process)."""
    return _json_answer(config, "train", "--dry-run", "--dataset", str(dataset), "--preset", preset, *settings)


def launch_training(config: Config, dataset: Path, preset: str, settings: list[str]) -> Path:
    """`train --detach`: the runner starts in its own session; returns the new run's directory."""
    result = run_cli(config, "train", "--detach", "--dataset", str(dataset), "--preset", preset, *settings)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().removeprefix("forge-tui: error: ") or f"exited with {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])
