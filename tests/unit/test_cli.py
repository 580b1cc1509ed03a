"""The command line as an operator meets it: help, usage errors, exit codes, messages."""

from __future__ import annotations

import json

import pytest

from forge_tui.cli import main
from tests.conftest import SAMPLE, run_cli


@pytest.mark.parametrize("args", [["--help"], ["models", "--help"], ["models", "list", "--help"], ["models", "fetch", "--help"],
                                  ["data", "--help"], ["data", "check", "--help"], ["train", "--help"], ["resume", "--help"],
                                  ["runs", "--help"], ["stop", "--help"], ["export", "--help"]])
def test_every_command_prints_help(args, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 0 and "usage: forge-tui" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["bogus"], ["models", "bogus"], ["data", "check"], ["data", "check", "x", "--nope"], ["models"], ["data"],
                                  ["train", "--preset", "huge"], ["export", "run"], ["stop"]])
def test_unknown_or_incomplete_commands_exit_2_with_usage(args, capsys) -> None:
    try:
        code = main(args)
    except SystemExit as exited:
        code = exited.code
    assert code == 2 and "usage: forge-tui" in capsys.readouterr().err


def test_python_dash_m_entry_point() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("forge-tui ")


def test_bad_config_exits_2_without_traceback(write) -> None:
    config = write("c.toml", "[data]\nmax_seq_len = -3\nbogus = 1\n")
    result = run_cli("--config", str(config), "data", "check", str(SAMPLE / "eval.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{config}:2: [data] max_seq_len" in result.stderr and f"{config}:3: [data] unknown key 'bogus'" in result.stderr


def test_data_check_bad_file_lists_every_problem_and_keeps_the_file(write) -> None:
    path = write("bad.jsonl", '{"text": "ok"}\n{oops\n{"text": 5}\n')
    before = path.read_bytes()
    result = run_cli("data", "check", str(path), "--model", "/nonexistent-model-dir-so-no-tokenizer")
    assert result.returncode == 2 and "not a usable model directory" in result.stderr
    result = run_cli("data", "check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:2: malformed JSON" in result.stderr and f"{path}:3: 'text' is a number" in result.stderr
    assert path.read_bytes() == before


def test_data_check_json_is_one_document(write) -> None:
    path = write("d.jsonl", '{"prompt": "p", "completion": "c"}\n{"prompt": "p", "completion": "c"}\n')
    result = run_cli("data", "check", str(path), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] and report["samples"] == 2 and report["duplicate_count"] == 1
    assert report["manifest"]["files"][0]["format"] == "prompt"


def test_data_check_on_the_sample_data_with_the_real_tokenizer(embedded_model) -> None:
    result = run_cli("data", "check", str(SAMPLE / "train.jsonl"), "--json", "--max-seq-len", "64")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["samples"] == 623 and report["problem_count"] == 0
    lengths = report["token_lengths"]
    assert 30 < lengths["min"] <= lengths["median"] <= lengths["p95"] <= lengths["max"] < 400
    assert 0 < lengths["truncated"] < 623 and lengths["max_seq_len"] == 64
    assert report["split"]["train"] + report["split"]["eval"] == 623


def test_models_list_json_shows_the_embedded_default(embedded_model, write) -> None:
    config = write("c.toml", f'[models]\npaths = ["{embedded_model.parent / "not-there"}"]\n')
    result = run_cli("--config", str(config), "models", "list", "--json")
    rows = json.loads(result.stdout)
    assert result.returncode == 0 and rows[0]["embedded"] and rows[0]["provisioned"]
    assert rows[0]["parameters"] == 134_515_008 and rows[0]["format"] == "safetensors" and rows[0]["size_bytes"] > 5e8
    assert rows[1]["provisioned"] is False and rows[1]["format"] == "missing"


def test_train_dry_run_reports_plan_and_memory_and_creates_nothing(tiny_config, tmp_path) -> None:
    result = run_cli("--config", str(tiny_config), "train", "--dry-run", "--json", "--set", "lora.r=8")
    found = json.loads(result.stdout)
    assert result.returncode == 0 and found["ok"] and found["problems"] == []
    assert found["plan"]["device"] == "cpu" and found["memory"]["verdict"] == "ok"
    assert 0 < found["memory"]["total"] < found["memory"]["available"]
    assert found["dataset"]["samples"] == 96 and sum(found["dataset"]["split"].values()) == 96
    bigger = json.loads(run_cli("--config", str(tiny_config), "train", "--dry-run", "--json",
                                "--set", "train.micro_batch_size=64").stdout)
    assert bigger["memory"]["total"] > found["memory"]["total"]  # the estimate follows the settings
    assert not (tmp_path / "runs").exists()


def test_train_refuses_a_dataset_with_errors_naming_file_and_line(tiny_config, write, tmp_path) -> None:
    bad = write("bad.jsonl", '{"prompt": "p", "completion": "c"}\n{oops\n')
    before = bad.read_bytes()
    dry = run_cli("--config", str(tiny_config), "train", "--dry-run", "--dataset", str(bad))
    assert dry.returncode == 2 and f"{bad}:2: malformed JSON" in dry.stderr and "nothing was created" in dry.stdout
    launch = run_cli("--config", str(tiny_config), "train", "--detach", "--dataset", str(bad))
    assert launch.returncode == 2 and f"{bad}:2: malformed JSON" in launch.stderr and "Traceback" not in launch.stderr
    assert bad.read_bytes() == before and not (tmp_path / "runs").exists()


def test_bad_set_values_exit_2_naming_the_flag(tiny_config) -> None:
    result = run_cli("--config", str(tiny_config), "train", "--dry-run", "--set", "lora.r=0", "--set", "lora.dropout=x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--set: [lora] r: must be between 1 and 1024, got 0" in result.stderr
    assert "--set: [lora] dropout: expected a number, got string" in result.stderr
    assert run_cli("train", "--set", "lora").returncode == 2
