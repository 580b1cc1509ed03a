"""Themes load from themes/*.toml and bad files are refused with their line. (Every screen in every
theme: tests/ui/test_snapshots.py.)"""

from __future__ import annotations

import pytest

from forge_tui.config import UiConfig
from forge_tui.errors import BadInput
from forge_tui.ui.themes import load_theme, load_themes
from tests.helpers import run_cli

NAMES = ["forge-dark", "forge-high-contrast", "forge-night"]


def test_the_three_themes_load() -> None:
    themes = {theme.name: theme for theme in load_themes()}
    assert sorted(themes) == NAMES
    assert UiConfig().theme in themes
    assert themes["forge-night"].primary.startswith("#A0")  # red only: night vision


@pytest.mark.parametrize(("body", "where"), [
    ('name = "x"\nprimary = "#fff"\ncolour = "red"\n', ":3: colour: unknown key"),
    ('name = "x"\nprimary = "not-a-colour"\n', ":2: primary: not a colour"),
    ('name = "x"\nprimary = "#fff"\ndark = "yes"\n', ":3: dark: expected true or false"),
])
def test_a_bad_theme_file_names_its_line(write, body: str, where: str) -> None:
    path = write("bad.toml", body)
    with pytest.raises(BadInput) as caught:
        load_theme(path)
    assert f"{path}{where}" in str(caught.value)


def test_an_unknown_theme_is_bad_input(write) -> None:
    config = write("c.toml", '[ui]\ntheme = "neon"\n')
    result = run_cli("--config", str(config))
    assert result.returncode == 2
    assert "no such theme (known: forge-dark" in result.stderr
