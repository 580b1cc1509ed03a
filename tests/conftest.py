"""Shared fixtures. Tests that need the real embedded model use `embedded_model`: the README's test
command provisions it first, so its absence is a set-up failure, reported as such (never skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

import forge_tui  # noqa: F401 - sets the offline variables before anything imports transformers
from forge_tui.engine.models import embedded_path, is_provisioned
from tests.helpers import SAMPLE, run_dir, train

# The operator's own config file must not change what the suite sees (nor its child processes).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="forge-tui-test-config-")
# Nor does the suite write into the operator's console log, or their corrections.
os.environ["FORGE_TUI_LOG_DIR"] = tempfile.mkdtemp(prefix="forge-tui-test-log-")
os.environ["FORGE_TUI_DATA_DIR"] = os.path.join(tempfile.mkdtemp(prefix="forge-tui-test-data-"), "datasets")

# Property tests draw the same examples on every run (a suite that passes stays passing); set
# HYPOTHESIS_PROFILE=explore to draw new ones when hunting bugs.
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))



@pytest.fixture(autouse=True)
def own_corrections_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own corrections folder: a correction one test saves would otherwise show in the
    Datasets screen of every later test (and their child processes inherit the variable)."""
    monkeypatch.setenv("FORGE_TUI_DATA_DIR", str(tmp_path_factory.mktemp("data") / "datasets"))


@pytest.fixture(autouse=True)
def questions_accepted() -> None:
    """A console an earlier test closed has stopped accepting questions (jobs.stop_questions kills
    the checks asked after it); each test starts as a freshly opened console does."""
    from forge_tui.ui.jobs import accept_questions

    accept_questions()


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    path = embedded_path()
    if not is_provisioned(path):
        pytest.fail(f"the embedded default model is not provisioned at {path}: run `forge-tui models fetch` "
                    "(the README's test command does this first)")
    return path


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


@pytest.fixture(scope="session")
def tiny_model(embedded_model, tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and the embedded model's tokenizer: real code paths,
    seconds per run."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=True,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def write_tiny_config(folder: Path, tiny_model: Path) -> Path:
    """A config file training the tiny model on a slice of the sample data, runs under `folder`."""
    data = folder / "train.jsonl"
    data.write_text("".join((SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:96]), encoding="utf-8")
    config = folder / "forge.toml"
    config.write_text(f"""
[model]
name = "{tiny_model}"
[runs]
dir = "{folder / 'runs'}"
[data]
max_seq_len = 128
[lora]
r = 4
alpha = 8
dropout = 0.1
[train]
dataset = "{data}"
max_steps = 8
micro_batch_size = 4
grad_accum = 2
learning_rate = 0.005
eval_every = 4
save_every = 2
keep_checkpoints = 10
threads = 1
""")
    return config


@pytest.fixture
def tiny_config(tiny_model: Path, tmp_path: Path) -> Path:
    """The tiny run's config, with its data and runs under this test's tmp_path."""
    return write_tiny_config(tmp_path, tiny_model)


@dataclass(frozen=True)
class TinyRun:
    path: Path
    trained: subprocess.CompletedProcess[str]     # what `train` printed


@pytest.fixture(scope="session")
def tiny_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """The tiny config trained once for the whole session, to the end (8 steps, checkpoints every 2,
    eval every 4). Read it, never change it: `trained` gives a test a copy of its own."""
    config = write_tiny_config(tmp_path_factory.mktemp("tiny-run"), tiny_model)
    result = train(config)
    assert result.returncode == 0, result.stderr
    return TinyRun(run_dir(result), result)


@pytest.fixture
def trained(tiny_run: TinyRun, tiny_config: Path, tmp_path: Path) -> Path:
    """A copy of the session's finished tiny run in this test's runs folder (where `tiny_config`
    looks), to benchmark, export, damage or list."""
    target = tmp_path / "runs" / tiny_run.path.name
    shutil.copytree(tiny_run.path, target)
    return target
