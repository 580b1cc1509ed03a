"""Shared fixtures. Tests that need the real embedded model use `embedded_model`: the README's test
command provisions it first, so its absence is a set-up failure, reported as such (never skipped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import forge_tui  # noqa: F401 - sets the offline variables before anything imports transformers
from forge_tui.engine.models import embedded_path, is_provisioned

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "waterworks"


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    path = embedded_path()
    if not is_provisioned(path):
        pytest.fail(f"the embedded default model is not provisioned at {path}: run `forge-tui models fetch` "
                    "(the README's test command does this first)")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m forge_tui ARGS` in a fresh process, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "forge_tui", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def write(tmp_path: Path):
    """write(name, content) -> path; bytes are written as they are, text as UTF-8."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write
