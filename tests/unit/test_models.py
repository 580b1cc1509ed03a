"""Model directories and provisioning: inspection without loading, refusal of pickles, atomicity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from forge_tui.engine.models import (
    EMBEDDED,
    MANIFEST_NAME,
    describe_directory,
    is_provisioned,
    resolve_model,
    verify_manifest,
)
from forge_tui.errors import BadInput
from forge_tui.paths import downloads_dir
from tests.helpers import ROOT, run_cli


def _model_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    save_file({"a.weight": np.zeros((4, 8), dtype=np.float16), "b.bias": np.zeros(3, dtype=np.float16)}, root / "model.safetensors")
    (root / "config.json").write_text("{}")
    return root


def test_describe_reads_parameters_from_the_safetensors_header(tmp_path) -> None:
    info = describe_directory(_model_dir(tmp_path / "m"))
    assert info.provisioned
    assert info.parameters == 35
    assert info.dtype == "F16"
    assert info.format == "safetensors"


def test_pickle_only_directory_is_refused(tmp_path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    info = describe_directory(folder)
    assert not info.provisioned
    assert info.format == "pickle (refused)"
    assert "safetensors" in info.note
    with pytest.raises(BadInput, match="not a usable model directory"):
        resolve_model(str(folder))


def test_corrupt_safetensors_is_reported_not_raised(tmp_path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\xff" * 4)
    info = describe_directory(folder)
    assert not info.provisioned
    assert "not a safetensors file" in info.note


def test_embedded_model_is_intact_and_answers(embedded_model) -> None:
    manifest = json.loads((embedded_model / MANIFEST_NAME).read_text())
    assert verify_manifest(embedded_model) == []
    assert manifest["parameters"] == EMBEDDED.parameters
    assert EMBEDDED.probe_answer in manifest["probe"]["answer"]
    assert manifest["source"]["wheel_sha256"] == EMBEDDED.wheel_sha256


def _cached_wheel() -> Path:
    wheel = downloads_dir() / EMBEDDED.wheel_file
    assert wheel.is_file(), "the test command's `models fetch` leaves the wheel in the downloads cache"
    return wheel


def test_wheel_with_the_wrong_hash_is_refused(tmp_path) -> None:
    fake = tmp_path / EMBEDDED.wheel_file
    fake.write_bytes(b"PK not the real wheel")
    result = run_cli("models", "fetch", "--wheel", str(fake), env={"FORGE_TUI_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 2
    assert "does not match the pinned" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache" / "models" / EMBEDDED.name).exists()


def test_interrupted_fetch_is_never_used_and_a_rerun_completes(embedded_model, tmp_path) -> None:
    """kill -9 in the middle of the conversion; the model must not count as provisioned; a second
    fetch cleans the leftovers, converts, verifies and is then idempotent."""
    cache = tmp_path / "cache"
    env = {**os.environ, "FORGE_TUI_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "forge_tui", "models", "fetch", "--wheel", str(_cached_wheel())]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("converting"):
            break
    time.sleep(3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    target = cache / "models" / EMBEDDED.name
    assert not is_provisioned(target)
    assert list((cache / "models").glob(".partial-*")), "the kill should have left a partial directory behind"
    assert run_cli("models", "list", "--json", env={"FORGE_TUI_CACHE_DIR": str(cache)}).stdout.count('"provisioned": false') == 1

    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode == 0, first.stderr
    assert is_provisioned(target)
    assert verify_manifest(target) == []
    assert not list((cache / "models").glob(".partial-*"))
    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0
    assert "already provisioned" in second.stdout
