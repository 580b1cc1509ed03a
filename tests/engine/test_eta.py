"""The run's time, said before it starts: the estimate's arithmetic (worked by hand), the probe and
its cache on the tiny model, and the runner recording the estimate the launch was given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_tui.config import load_config
from forge_tui.engine.eta import Speeds, estimate, mixed_rows, padded_tokens, speeds_key
from forge_tui.engine.events import read_events
from forge_tui.engine.plan import Plan
from forge_tui.engine.rehearsal import rehearsal_file
from tests.helpers import run_cli, run_dir


def test_the_estimate_adds_up_the_runs_parts(write) -> None:
    config = load_config(write("c.toml", '[data]\nrehearsal = ""\n[train]\nmax_steps = 4\nmicro_batch_size = 2\n'
                                         'grad_accum = 1\neval_every = 2\nsave_every = 2\n'))
    speeds = Speeds(load_s=1.0, warmup_s=0.5, train_s_per_token=0.01, eval_s_per_token=0.001, save_s=0.2, answer_s=None)
    found = estimate(config, speeds, [16, 16, 16, 16], [8, 8], questions=0, measured=False)
    # 4 steps of 2 x 16 padded tokens at 0.01 s = 1.28 s; evals at 0, 2, 4 over 2 x 8 tokens at 0.001 s = 0.048 s;
    # checkpoints at 2 and 4 and the adapter: 3 x 0.2 s; load 1 s and warm-up 0.5 s
    assert found.parts == {"load": 1.0, "answers": 0.0, "warm-up": 0.5, "steps": 1.3, "evals": 0.0, "checkpoints": 0.6}
    assert found.seconds == pytest.approx(1.0 + 0.5 + 1.28 + 0.048 + 0.6, abs=0.05)


def test_padding_and_mixing_follow_the_trainer() -> None:
    assert padded_tokens([3, 5, 9], 2) == 2 * 5 + 1 * 9   # each micro-batch padded to its longest
    assert mixed_rows([10, 10, 10], [4, 6], 0.25) == [10, 10, 10, 4]   # a quarter rehearsal: 1 row for 3 domain rows
    assert mixed_rows([10, 10, 10, 10, 10, 10], [4, 6], 0.5) == [10] * 6 + [4, 6, 4, 6, 4, 6]   # the set repeated


def test_the_speeds_are_kept_per_shape(write, tmp_path: Path) -> None:
    plan = Plan(device="cpu", dtype="fp32", quantized=False, checkpointing=False, compiled=False)
    base = load_config(write("a.toml", "[train]\nmicro_batch_size = 4\n"))
    other = load_config(write("b.toml", "[train]\nmicro_batch_size = 8\n"))
    assert speeds_key(base, plan, tmp_path) == speeds_key(load_config(write("c.toml", "[train]\nmicro_batch_size = 4\n")), plan, tmp_path)
    assert speeds_key(base, plan, tmp_path) != speeds_key(other, plan, tmp_path)
    # a run records the rehearsal set's path where the form said its name: the same speeds
    named = load_config(write("d.toml", '[data]\nrehearsal = "general"\n'))
    recorded = load_config(write("e.toml", f'[data]\nrehearsal = "{rehearsal_file("general")}"\n'))
    assert speeds_key(named, plan, tmp_path) == speeds_key(recorded, plan, tmp_path)


def test_the_dry_run_measures_once_and_the_runner_records_the_same_estimate(tiny_config: Path) -> None:
    def dry_run() -> dict:
        done = run_cli("--config", str(tiny_config), "train", "--dry-run", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["eta"]

    first, again = dry_run(), dry_run()
    assert first["measured"] is True   # a new model and shape: the probe ran
    assert again["measured"] is False  # the cached speeds
    assert again["seconds"] == first["seconds"] > 0
    assert first["parts"]["steps"] > 0
    text = run_cli("--config", str(tiny_config), "train", "--dry-run").stdout
    assert "time: about" in text
    trained = run_cli("--config", str(tiny_config), "train")
    assert trained.returncode == 0, trained.stderr
    run = run_dir(trained)
    started = read_events(run / "events.jsonl")[0]
    assert started["estimate_seconds"] == first["seconds"]
    assert started["setup_seconds"] > 0
    (listed,) = json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)
    assert listed["estimate_s"] == first["seconds"]
    assert listed["record"]["seconds"] >= started["setup_seconds"]
