"""Loss curves on a plotext chart: the Monitor's one run, and several runs overlaid on Runs.

Training loss is a line; eval loss is points at the steps it was measured (a line through a handful
of evals reads as a staircase). Colours come from the theme, so the night theme stays red.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.color import Color
from textual.theme import Theme
from textual_plotext import PlotextPlot

EVAL_MARKER = "●"


@dataclass(frozen=True)
class Curves:
    label: str
    losses: list[tuple[int, float]]
    evals: list[tuple[int, float]]


def palette(theme: Theme) -> list[tuple[int, int, int]]:
    """Distinct theme colours for the runs of an overlay, the theme's primary first."""
    names = (theme.primary, theme.accent, theme.success, theme.warning, theme.secondary, theme.error)
    colours: list[tuple[int, int, int]] = []
    for name in names:
        rgb = Color.parse(name).rgb if name else None
        if rgb is not None and rgb not in colours:
            colours.append(rgb)
    return colours


def draw_curves(chart: PlotextPlot, title: str, runs: list[Curves], theme: Theme) -> None:
    """One run: train in primary, eval in accent. Several: one colour per run for both curves."""
    plt = chart.plt
    plt.clear_data()
    plt.title(title)
    colours = palette(theme)
    for index, run in enumerate(runs):
        single = len(runs) == 1
        train = colours[index % len(colours)]
        held = colours[1 % len(colours)] if single else train
        prefix = "" if single else f"{run.label} "
        if run.losses:
            plt.plot([s for s, _ in run.losses], [v for _, v in run.losses], label=f"{prefix}train", color=train)
        if run.evals:
            plt.scatter([s for s, _ in run.evals], [v for _, v in run.evals], label=f"{prefix}eval", marker=EVAL_MARKER,
                        color=held)
    chart.refresh()
