"""Runs side by side: what an operator changed between runs, and what it changed in the result.

For two or more runs: their loss and eval-loss curves (from the event logs), the settings that
differ (only those: the resolved configs flattened to `section.key`), and per run the composite of
its last benchmark, the time taken against the estimate, the energy and the lowest headroom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_tui.engine.events import read_events
from forge_tui.engine.fsutil import read_json_object
from forge_tui.engine.status import RunStatus
from forge_tui.units import duration, figure

# Settings that differ between any two runs without saying anything about them.
UNTELLING = frozenset({"runs.dir"})


@dataclass(frozen=True)
class RunCurves:
    name: str
    losses: list[tuple[int, float]]
    evals: list[tuple[int, float]]


def curves(status: RunStatus) -> RunCurves:
    """The run's training loss per step and eval loss at the steps it was measured (the last value
    of a step that a resumed run trained again)."""
    losses: dict[int, float] = {}
    evals: dict[int, float] = {}
    for event in read_events(Path(status.path) / "events.jsonl"):
        if event["type"] == "step":
            losses[event["step"]] = event["loss"]
        elif event["type"] == "eval":
            evals[event["step"]] = event["eval_loss"]
    return RunCurves(status.name, sorted(losses.items()), sorted(evals.items()))


def flat_settings(run_path: Path) -> dict[str, Any]:
    """The run's resolved config as `section.key` -> value, with its preset and dataset."""
    recorded = read_json_object(run_path / "config.json")
    flat: dict[str, Any] = {"preset": recorded.get("preset")}
    for section, table in recorded["sections"].items():
        flat.update({f"{section}.{key}": value for key, value in table.items()})
    return flat


def settings_diff(paths: list[Path]) -> list[tuple[str, list[str]]]:
    """Each setting whose value is not the same in every run, with the value in each."""
    flats = [flat_settings(path) for path in paths]
    keys = sorted({key for flat in flats for key in flat} - UNTELLING)
    shown = [(key, [_shown(flat.get(key, "-")) for flat in flats]) for key in keys]
    return [(key, values) for key, values in shown if len(set(values)) > 1]


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def comparable(statuses: list[RunStatus]) -> list[RunStatus]:
    """The runs whose files can be read (an unreadable one has no settings or curves to show)."""
    return [status for status in statuses if status.state != "unreadable"]


def outcomes(status: RunStatus) -> dict[str, str]:
    """The run's results in words: benchmark, eval loss, time against its estimate, energy, headroom."""
    record, bench = status.record, status.bench
    spent = "-" if record is None or record.seconds is None else duration(record.seconds)
    estimate = "" if status.estimate_s is None else f" (est. {duration(status.estimate_s)})"
    return {
        "composite": f"{bench.base:.1f} -> {bench.tuned:.1f}" if bench else "not benchmarked",
        "final eval loss": figure(status.eval_loss, 3),
        "time": spent + estimate,
        "energy": "not measured" if record is None or record.energy_wh is None else
                  f"{record.energy_wh:.2f} Wh, {figure(record.joules_per_token, 2)} J/token",
        "lowest headroom": "-" if record is None or record.headroom_min_c is None else f"{record.headroom_min_c:.1f} °C",
    }
