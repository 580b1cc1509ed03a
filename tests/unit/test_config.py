"""Config loading: defaults, every problem at once, lines that point at the problem."""

from __future__ import annotations

import pytest

from forge_tui.config import Config, ConfigError, load_config, parse_assignments, parse_config
from forge_tui.errors import BadInput


def test_defaults_without_a_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FORGE_TUI_CONFIG", str(tmp_path / "absent.toml"))
    config = load_config()
    assert config == Config()
    assert config.data.eval_fraction == 0.1


def test_values_are_read_and_typed(write) -> None:
    path = write("c.toml", '[models]\npaths = ["/m/a"]\n[data]\neval_fraction = 0\nmax_seq_len = 256\n')
    config = load_config(path)
    assert config.models.paths == ("/m/a",)
    assert config.data.eval_fraction == 0.0
    assert config.data.max_seq_len == 256


def test_every_problem_is_listed_with_its_line(write) -> None:
    text = "\n".join([
        "[data]",
        "eval_fraction = 0.9",      # 2: impossible value
        'max_seq_len = "long"',     # 3: wrong type
        "colour = 1",               # 4: unknown key
        "[gpu]",                    # 5: unknown section
        "x = 1",
        "[models]",
        "paths = [1]",              # 8: wrong item type
    ])
    path = write("c.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = sorted((p.line, p.message.split(":")[0]) for p in caught.value.problems)
    assert [line for line, _ in lines] == [2, 3, 4, 5, 8]
    message = str(caught.value)
    assert f"{path}:2: [data] eval_fraction: must be in [0, 0.5)" in message
    assert "expected an integer, got string" in message
    assert "unknown key 'colour'" in message
    assert "unknown section [gpu]" in message
    assert "item 1: expected a string, got integer" in message
    assert caught.value.exit_code == 2


def test_syntax_error_names_the_line(write) -> None:
    path = write("c.toml", "[data]\neval_fraction = = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:2: TOML syntax error")


def test_booleans_are_not_numbers(tmp_path) -> None:
    with pytest.raises(ConfigError, match="expected an integer, got boolean"):
        parse_config("[data]\nmax_seq_len = true\n", tmp_path / "c.toml")


def test_explicit_missing_file_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_compile_and_rehearsal_weight_are_checked(write) -> None:
    path = write("c.toml", '[model]\ncompile = "yes"\n[data]\nrehearsal_weight = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert sorted(p.line for p in caught.value.problems) == [2, 4]
    assert "rehearsal_weight: must be in (0, 100], got 0.0" in str(caught.value)


def test_compile_is_on_for_cuda_only_unless_asked(write) -> None:
    from forge_tui.engine.plan import resolve_plan

    assert not resolve_plan(load_config(write("a.toml", '[model]\ndevice = "cpu"\n'))).compiled
    on = resolve_plan(load_config(write("b.toml", '[model]\ndevice = "cpu"\ncompile = "on"\n')))
    assert on.compiled
    assert on.precision == "fp32, compiled"


def test_set_assignments_are_typed_like_toml() -> None:
    found = parse_assignments(["lora.r=8", "train.learning_rate=2e-4", "thermal.guard=false",
                               'model.name="123"', "model.quantization=nf4", " data.max_seq_len = 64 "])
    assert found == {"lora": {"r": 8}, "train": {"learning_rate": 2e-4}, "thermal": {"guard": False},
                     "model": {"name": "123", "quantization": "nf4"}, "data": {"max_seq_len": 64}}


@pytest.mark.parametrize("item", ["lora", "lora=8", ".r=8", "lora.=8", "r8"])
def test_a_malformed_set_is_bad_input(item: str) -> None:
    with pytest.raises(BadInput, match=r"SECTION\.KEY=VALUE"):
        parse_assignments([item])


def test_problems_with_set_values_name_the_flag_and_the_setting(write) -> None:
    path = write("forge.toml", "[lora]\nalpha = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, "quick", parse_assignments(["lora.r=0", "lora.bogus=1"]))
    found = {(str(p.file), p.line, p.key) for p in caught.value.problems}
    assert found == {(str(path), 2, "lora.alpha"), ("command line", None, "lora.r"), ("command line", None, "lora.bogus")}
    assert "command line: [lora] r: must be between 1 and 1024, got 0" in str(caught.value)


def _problems(path, overrides: dict, **options: bool) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, "quick", overrides, **options)
    return [str(problem) for problem in caught.value.problems]


def test_an_unknown_section_from_set_is_blamed_on_set(write) -> None:
    path = write("c.toml", "[lora]\nr = 8\n")
    assert _problems(path, {"nosuch": {"key": 1}}) == [
        "command line: unknown section [nosuch] (known: bench, data, lora, model, models, runs, telemetry, thermal, train, ui)"]


def test_a_broken_file_and_a_bad_flag_are_reported_together(write) -> None:
    path = write("c.toml", "[lora\nr = 3\n")
    found = _problems(path, {"lora": {"r": 0}})
    assert found[0].startswith(f"{path}:1: TOML syntax error")
    assert found[1:] == ["command line: [lora] r: must be between 1 and 1024, got 0"]


def test_a_missing_dataset_is_reported_with_the_rest_at_its_line(write, tmp_path) -> None:
    path = write("c.toml", f'[train]\ndataset = "{tmp_path / "gone.jsonl"}"\n[lora]\nr = 0\n')
    assert _problems(path, {}, check_paths=True) == [
        f"{path}:4: [lora] r: must be between 1 and 1024, got 0",
        f"{path}:2: [train] dataset: {tmp_path / 'gone.jsonl'}: no such file or folder"]
    assert load_config(write("ok.toml", f'[train]\ndataset = "{tmp_path / "gone.jsonl"}"\n')).train.dataset  # only `train` asks
