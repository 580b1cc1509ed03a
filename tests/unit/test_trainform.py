"""The Train form's checking: typed fields, the config loader's own rules, and the `--set` arguments
a launch passes (read back by the CLI's parser, they must give the same settings)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from forge_tui.config import Config, parse_assignments
from forge_tui.ui.trainform import FIELDS, check_form, form_values


def _values(**changes: str) -> dict[str, str]:
    values = form_values(Config())
    values.update({key.replace("__", "."): value for key, value in changes.items()})
    return values


def test_the_form_starts_from_the_preset_and_makes_that_config(tmp_path) -> None:
    checked = check_form(form_values(Config()), None, "standard")
    assert checked.ok
    assert checked.config is not None
    assert checked.config.lora == Config().lora
    assert checked.config.thermal == Config().thermal


def test_a_value_of_the_wrong_type_marks_its_field() -> None:
    checked = check_form(_values(lora__r="eight", train__learning_rate="fast"), None, "quick")
    assert not checked.ok
    assert checked.errors == {"lora.r": "expected a whole number", "train.learning_rate": "expected a number"}


def test_the_config_loaders_rules_mark_the_field_they_are_about(tmp_path) -> None:
    checked = check_form(_values(thermal__pause_below="12", lora__dropout="1.5"), None, "standard")
    assert not checked.ok
    assert checked.errors["thermal.resume_above"].startswith("must be above pause_below (12.0)")
    assert checked.errors["lora.dropout"] == "must be in [0, 1), got 1.5"


def test_a_bad_config_file_is_reported_but_not_blamed_on_a_field(write) -> None:
    path = write("forge.toml", "[bogus]\nx = 1\n")
    checked = check_form(form_values(Config()), path, "standard")
    assert not checked.ok
    assert not checked.errors
    assert checked.general == [(f"{path}:1: unknown section [bogus] (known: bench, data, lora, model, models, runs, "
                                "telemetry, thermal, train, ui)")]


@given(r=st.integers(1, 1024), lr=st.floats(1e-7, 0.9), epochs=st.floats(0.01, 100), guard=st.booleans(),
       name=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1).map(str.strip).filter(bool))
def test_the_launch_arguments_read_back_as_the_same_settings(r: int, lr: float, epochs: float, guard: bool, name: str) -> None:
    values = _values(lora__r=str(r), train__learning_rate=repr(lr), train__epochs=repr(epochs),
                     thermal__guard="on" if guard else "off", model__name=name)
    checked = check_form(values, None, "standard")
    assert checked.ok, checked.errors
    read_back = parse_assignments([argument.removeprefix("--set=") for argument in checked.settings()])
    assert read_back == checked.overrides
    assert {f.key for f in FIELDS} == {f"{section}.{key}" for section, table in read_back.items() for key in table}
