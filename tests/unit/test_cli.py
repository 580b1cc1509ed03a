"""The command line as an operator meets it: help, usage errors, exit codes, messages."""

from __future__ import annotations

import argparse
import json

import pytest

from forge_tui.cli import build_parser, main
from tests.helpers import SAMPLE, run_cli


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path the parser knows: (), ("models",), ("models", "list"), ..."""
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(build_parser())


def test_the_walk_finds_every_command() -> None:
    assert len(COMMANDS) >= 16
    assert ("models", "fetch") in COMMANDS
    assert ("serve",) in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command) or "forge-tui")
def test_every_command_prints_help(command: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(" ".join(("usage: forge-tui", *command)))


@pytest.mark.parametrize("args", [["bogus"], ["models", "bogus"], ["data", "check"], ["data", "check", "x", "--nope"], ["models"], ["data"],
                                  ["train", "--preset", "huge"], ["export", "run"], ["stop"]])
def test_unknown_or_incomplete_commands_exit_2_with_usage(args, capsys) -> None:
    try:
        code: object = main(args)
    except SystemExit as exited:
        code = exited.code
    assert code == 2
    assert "usage: forge-tui" in capsys.readouterr().err


def test_python_dash_m_entry_point() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("forge-tui ")


def test_bad_config_exits_2_without_traceback(write) -> None:
    config = write("c.toml", "[data]\nmax_seq_len = -3\nbogus = 1\n")
    result = run_cli("--config", str(config), "data", "check", str(SAMPLE / "eval.jsonl"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{config}:2: [data] max_seq_len" in result.stderr
    assert f"{config}:3: [data] unknown key 'bogus'" in result.stderr


def test_data_check_bad_file_lists_every_problem_and_keeps_the_file(write) -> None:
    path = write("bad.jsonl", '{"text": "ok"}\n{oops\n{"text": 5}\n')
    before = path.read_bytes()
    result = run_cli("data", "check", str(path), "--model", "/nonexistent-model-dir-so-no-tokenizer")
    assert result.returncode == 2
    assert "not a usable model directory" in result.stderr
    result = run_cli("data", "check", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:2: malformed JSON" in result.stderr
    assert f"{path}:3: 'text' is a number" in result.stderr
    assert path.read_bytes() == before


def test_data_check_json_is_one_document(write) -> None:
    path = write("d.jsonl", '{"prompt": "p", "completion": "c"}\n{"prompt": "p", "completion": "c"}\n')
    result = run_cli("data", "check", str(path), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert report["ok"]
    assert report["samples"] == 2
    assert report["duplicate_count"] == 1
    assert report["manifest"]["files"][0]["format"] == "prompt"


def test_data_check_on_the_sample_data_with_the_real_tokenizer(embedded_model) -> None:
    result = run_cli("data", "check", str(SAMPLE / "train.jsonl"), "--json", "--max-seq-len", "64")
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert report["samples"] == 623
    assert report["problem_count"] == 0
    lengths = report["token_lengths"]
    assert 30 < lengths["min"] <= lengths["median"] <= lengths["p95"] <= lengths["max"] < 400
    assert 0 < lengths["truncated"] < 623
    assert lengths["max_seq_len"] == 64
    assert report["split"]["train"] + report["split"]["eval"] == 623


def test_models_list_json_shows_the_embedded_default(embedded_model, write) -> None:
    config = write("c.toml", f'[models]\npaths = ["{embedded_model.parent / "not-there"}"]\n')
    result = run_cli("--config", str(config), "models", "list", "--json")
    rows = json.loads(result.stdout)
    assert result.returncode == 0
    assert rows[0]["embedded"]
    assert rows[0]["provisioned"]
    assert rows[0]["parameters"] == 134_515_008
    assert rows[0]["format"] == "safetensors"
    assert rows[0]["size_bytes"] > 5e8
    assert rows[1]["provisioned"] is False
    assert rows[1]["format"] == "missing"


def test_train_dry_run_reports_plan_and_memory_and_creates_nothing(tiny_config, tmp_path) -> None:
    result = run_cli("--config", str(tiny_config), "train", "--dry-run", "--no-probe", "--json", "--set", "lora.r=8")
    found = json.loads(result.stdout)
    assert result.returncode == 0
    assert found["ok"]
    assert found["problems"] == []
    assert found["plan"]["device"] == "cpu"
    assert found["memory"]["verdict"] == "ok"
    assert 0 < found["memory"]["total"] < found["memory"]["available"]
    assert found["dataset"]["samples"] == 96
    assert sum(found["dataset"]["split"].values()) == 96
    bigger = json.loads(run_cli("--config", str(tiny_config), "train", "--dry-run", "--no-probe", "--json",
                                "--set", "train.micro_batch_size=64").stdout)
    assert bigger["memory"]["total"] > found["memory"]["total"]  # the estimate follows the settings
    longer = json.loads(run_cli("--config", str(tiny_config), "train", "--dry-run", "--no-probe", "--json", "--set", "lora.r=8",
                                "--set", "data.max_seq_len=8192").stdout)
    assert longer["memory"]["total"] == found["memory"]["total"]  # sized for the longest sample, not the cap
    assert not (tmp_path / "runs").exists()


def test_train_refuses_a_dataset_with_errors_naming_file_and_line(tiny_config, write, tmp_path) -> None:
    bad = write("bad.jsonl", '{"prompt": "p", "completion": "c"}\n{oops\n')
    before = bad.read_bytes()
    dry = run_cli("--config", str(tiny_config), "train", "--dry-run", "--no-probe", "--dataset", str(bad))
    assert dry.returncode == 2
    assert f"{bad}:2: malformed JSON" in dry.stderr
    assert "nothing was created" in dry.stdout
    launch = run_cli("--config", str(tiny_config), "train", "--detach", "--dataset", str(bad))
    assert launch.returncode == 2
    assert f"{bad}:2: malformed JSON" in launch.stderr
    assert "Traceback" not in launch.stderr
    assert bad.read_bytes() == before
    assert not (tmp_path / "runs").exists()


def test_bad_set_values_exit_2_naming_the_flag(tiny_config) -> None:
    result = run_cli("--config", str(tiny_config), "train", "--dry-run", "--no-probe", "--set", "lora.r=0", "--set", "lora.dropout=x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "command line: [lora] r: must be between 1 and 1024, got 0" in result.stderr
    assert "command line: [lora] dropout: expected a number, got string" in result.stderr
    assert run_cli("train", "--set", "lora").returncode == 2


def test_a_command_asked_for_json_fails_in_json(tiny_config) -> None:
    result = run_cli("--config", str(tiny_config), "train", "--dry-run", "--no-probe", "--json", "--set", "lora.r=0")
    assert result.returncode == 2
    refused = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1  # one line, as streaming commands print their objects
    assert set(refused) == {"error", "exit_code"}
    assert refused["exit_code"] == 2
    assert "command line: [lora] r: must be between 1 and 1024, got 0" in refused["error"]
    assert "forge-tui: error: command line: [lora] r" in result.stderr  # and in words for a person
    missing = run_cli("--config", str(tiny_config), "export", "no-such-run", "--merged", "out", "--json")
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["error"].startswith("no-such-run: no such run")


def test_map_flags_become_the_columns_override_and_a_name_may_hold_an_equals_sign() -> None:
    import argparse

    from forge_tui.cli.common import column_overrides
    from forge_tui.errors import BadInput

    given = argparse.Namespace(columns=["q=instruction", "cost=price=output", " padded =input"])
    assert column_overrides(given) == {"data": {"columns": {"q": "instruction", "cost=price": "output", " padded ": "input"}}}
    assert column_overrides(argparse.Namespace(columns=None)) == {}
    with pytest.raises(BadInput, match="--map 'question': expected KEY=FIELD"):
        column_overrides(argparse.Namespace(columns=["question"]))
