"""What may be loaded: safetensors only (a pickle that would write a file when loaded is refused and
the file never appears), no custom code, and an adapter that fits its base and is finite."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from tests.helpers import SAMPLE, run_cli


class _Evil:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _evil_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": _Evil(marker)}))
    return path


def test_a_pickle_only_model_is_refused_and_never_opened(tiny_model, tmp_path) -> None:
    folder = tmp_path / "pickled-model"
    folder.mkdir()
    shutil.copy(tiny_model / "config.json", folder)
    marker = tmp_path / "code-ran"
    _evil_pickle(folder / "pytorch_model.bin", marker)
    listed = run_cli("--config", str(_config(tmp_path, folder)), "models", "list", "--json")
    row = next(r for r in json.loads(listed.stdout) if r["path"] == str(folder))
    assert row["format"] == "pickle (refused)"
    assert "save_pretrained(folder, safe_serialization=True)" in row["note"]
    refused = run_cli("--config", str(_config(tmp_path, folder)), "train", "--dataset", str(SAMPLE / "train.jsonl"),
                      "--set", f'model.name="{folder}"', "--max-steps", "1")
    assert refused.returncode == 2
    assert "pickle weights (pytorch_model.bin) can run code" in refused.stderr
    assert not marker.exists()


@pytest.mark.parametrize("custom", ["auto_map", "python_file"])
def test_a_model_with_custom_code_is_refused(tiny_model, tmp_path, custom: str) -> None:
    folder = tmp_path / "custom-model"
    shutil.copytree(tiny_model, folder)
    if custom == "auto_map":
        config = json.loads((folder / "config.json").read_text())
        config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
        (folder / "config.json").write_text(json.dumps(config))
        expected = f"{folder / 'config.json'}: names custom code (auto_map)"
    else:
        (folder / "modeling_evil.py").write_text("raise SystemExit('custom code ran')\n")
        expected = f"{folder}: holds Python files (custom model code)"
    result = run_cli("train", "--dataset", str(SAMPLE / "train.jsonl"), "--set", f'model.name="{folder}"', "--dry-run")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "custom code ran" not in result.stderr + result.stdout


def test_a_pickled_adapter_is_refused_by_bench_and_export(tiny_config, trained: Path, tmp_path) -> None:
    marker = tmp_path / "code-ran"
    (trained / "adapter" / "adapter_model.safetensors").unlink()
    _evil_pickle(trained / "adapter" / "adapter_model.bin", marker)
    bench = run_cli("--config", str(tiny_config), "bench", str(trained), "--eval", str(SAMPLE / "eval.jsonl"), "--limit", "1")
    assert bench.returncode == 2
    assert "adapter_model.bin: pickle weights are refused" in bench.stderr
    export = run_cli("--config", str(tiny_config), "export", str(trained), "--merged", str(tmp_path / "merged"))
    assert export.returncode == 2
    assert "pickle weights are refused" in export.stderr
    assert not marker.exists()
    assert not (tmp_path / "merged").exists()


def test_a_damaged_adapter_is_refused_before_peft_sees_it(tiny_config, trained: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = trained / "adapter" / "adapter_model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first][0, 0] = float("nan")
    save_file(tensors, weights)
    bench = run_cli("--config", str(tiny_config), "bench", str(trained), "--eval", str(SAMPLE / "eval.jsonl"), "--limit", "1")
    assert bench.returncode == 2
    assert f"{first} holds NaN or infinite values" in bench.stderr


def _config(tmp_path: Path, model_folder: Path) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(f'[models]\npaths = ["{model_folder}"]\n[runs]\ndir = "{tmp_path / "runs"}"\n')
    return path
