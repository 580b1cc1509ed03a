"""Themes load from themes/*.toml and bad files are refused with their line. (Every screen in every
theme: tests/ui/test_snapshots.py.)"""

from __future__ import annotations

import dataclasses

import pytest
from textual.color import Color
from textual.theme import Theme

from forge_tui.config import UiConfig
from forge_tui.errors import BadInput
from forge_tui.ui.themes import contrast_failures, contrast_ratio, load_theme, load_themes
from tests.helpers import run_cli

NAMES = ["forge-dark", "forge-high-contrast", "forge-night"]


def test_the_three_themes_load() -> None:
    themes = {theme.name: theme for theme in load_themes()}
    assert sorted(themes) == NAMES
    assert UiConfig().theme in themes



@pytest.mark.parametrize("theme", load_themes(), ids=lambda theme: theme.name)
def test_every_pair_the_screens_draw_reads_at_wcag_contrast(theme: Theme) -> None:
    assert contrast_failures(theme) == []


def test_the_contrast_check_finds_a_dark_red_on_black() -> None:
    night = {theme.name: theme for theme in load_themes()}["forge-night"]
    assert contrast_ratio(Color.parse("#602020"), Color.parse("#000000")) == pytest.approx(1.72, abs=0.01)
    assert contrast_ratio(Color.parse("#FFFFFF"), Color.parse("#000000")) == pytest.approx(21.0)
    failing = dataclasses.replace(night, success="#602020")  # the headroom's colour before this check
    assert contrast_failures(failing) == [f"forge-night: success on {ground}: {ratio}" for ground, ratio in
                                          (("background", "1.71 < 4.5"), ("surface", "1.70 < 4.5"), ("panel", "1.67 < 4.5"))]


def test_the_night_theme_stays_red_and_no_brighter_than_it_needs() -> None:
    """Night vision: every colour drawn is red (no green or blue to speak of), and the plain text is
    within a little of the dimmest red that still reads (4.5:1)."""
    night = {theme.name: theme for theme in load_themes()}["forge-night"]
    variables = night.to_color_system().generate()
    for name in ("foreground", "text-muted", "success", "warning", "error", "accent", "primary", "panel"):
        colour = Color.parse(variables[name])
        assert colour.r >= 2 * max(colour.g, colour.b), name
    assert contrast_ratio(Color.parse(night.foreground or ""), Color.parse(night.panel or "")) < 5.0


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
