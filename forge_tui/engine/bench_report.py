"""The benchmark's Markdown report: for a person deciding whether the tuned model is better."""

from __future__ import annotations

import time
from typing import Any

from forge_tui.engine.scoring import SUBSCORES, WEIGHTS
from forge_tui.engine.telemetry.record import RunRecord
from forge_tui.units import duration, figure

SHOWN = 10  # items listed under "improved" and "regressed"


def item_gain(item: dict[str, Any]) -> float:
    """How much better the tuned answer is on one item (facts first, then similarity, or retention)."""
    def value(side: dict[str, Any]) -> float:
        if "correct" in side:
            return float(side["correct"])
        return float(side.get("facts", 0.0) * 2 + side.get("similarity", 0.0))

    return value(item["tuned"]) - value(item["base"])


def _table(result: dict[str, Any]) -> list[str]:
    ci = result["ci95"]
    lines = ["| | base | tuned | delta |", "|---|---:|---:|---:|",
             (f"| **composite** (0-100) | **{result['base']['composite']:.1f}** | **{result['tuned']['composite']:.1f}** | "
              f"**{result['delta']['composite']:+.1f}** |")]
    lines.extend(f"| {key} (weight {WEIGHTS[key]:g}) | {figure(result['base']['subscores'][key])} | "
                 f"{figure(result['tuned']['subscores'][key])} | {figure(result['delta']['subscores'][key], sign=True)} |"
                 for key in SUBSCORES)
    verdict = "a real gain" if result["significant"] and result["delta"]["composite"] > 0 else (
        "a real loss" if result["significant"] else "not distinguishable from noise")
    lines += ["", (f"95% bootstrap intervals ({result['settings']['resamples']} resamples over items): base "
                   f"{ci['base'][0]:.1f} to {ci['base'][1]:.1f}, tuned {ci['tuned'][0]:.1f} to {ci['tuned'][1]:.1f}, "
                   f"delta {ci['delta'][0]:+.1f} to {ci['delta'][1]:+.1f}: {verdict}.")]
    return lines


def _categories(result: dict[str, Any]) -> list[str]:
    lines = ["| category | items | base | tuned | delta | facts base -> tuned |", "|---|---:|---:|---:|---:|---|"]
    for name, row in result["categories"].items():
        base, tuned = row["base"], row["tuned"]
        facts = f"{figure(base['subscores']['facts'])} -> {figure(tuned['subscores']['facts'])}"
        lines.append(f"| {name} | {row['items']} | {base['composite']:.1f} | {tuned['composite']:.1f} | "
                     f"{tuned['composite'] - base['composite']:+.1f} | {facts} |")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _items(items: list[dict[str, Any]]) -> list[str]:
    lines = ["| item | question | base answer | tuned answer | must contain |", "|---|---|---|---|---|"]
    lines.extend(f"| {item['id']} | {_cell(item['question'])} | {_cell(item['base']['answer'])} | "
                 f"{_cell(item['tuned']['answer'])} | {_cell(', '.join(item['facts']))} |" for item in items)
    return lines


def _cost(result: dict[str, Any]) -> list[str]:
    """What the tuning cost on this device: time, energy and joules per trained token (absent where
    the device has no power meter the telemetry reads), then the thermal story."""
    cost = result.get("cost")
    if not cost:
        return []
    record = RunRecord.from_json(cost)
    rows = [("training time", "-" if record.seconds is None else duration(record.seconds)),
            ("paused by the thermal guard", duration(record.paused_s)),
            ("tokens trained", f"{record.tokens:,}"),
            ("energy", "not measured (no power meter)" if record.energy_wh is None else f"{record.energy_wh:.2f} Wh"),
            ("joules per trained token", figure(record.joules_per_token, 3)),
            ("mean / peak power", f"{figure(record.watts_mean)} / {figure(record.watts_max)} W"),
            ("meter", record.meter or "-"),
            ("lowest thermal headroom", "-" if record.headroom_min_c is None
             else f"{record.headroom_min_c:.1f} °C ({record.headroom_sensor})"),
            ("benchmark time", duration(result["seconds"]))]
    return ["## Cost", "", "| | |", "|---|---|", *[f"| {name} | {value} |" for name, value in rows], ""]


def render(result: dict[str, Any]) -> str:
    ranked = sorted(result["items"], key=item_gain)
    improved = [i for i in reversed(ranked) if item_gain(i) > 0][:SHOWN]
    regressed = [i for i in ranked if item_gain(i) < 0][:SHOWN]
    hashes = result["hashes"]
    lines = [f"# Benchmark of run {result['run']}", "",
             (f"{len(result['items'])} items; base model and tuned (base + this run's adapter), greedy answers of up "
              f"to {result['settings']['max_new_tokens']} tokens; {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{result['seconds']:.0f} s."), "", *_table(result), "", "## By category", "", *_categories(result), "",
             f"## Improved ({sum(item_gain(i) > 0 for i in ranked)} items; up to {SHOWN} shown)", "", *_items(improved), "",
             f"## Regressed ({sum(item_gain(i) < 0 for i in ranked)} items; up to {SHOWN} shown)", "",
             *(_items(regressed) if regressed else ["None."]), "",
             *_cost(result), "## Provenance", "", "| what | sha256 |", "|---|---|",
             *[f"| {name} | `{digest}` |" for name, digest in hashes.items() if digest], "",
             ("Scores: facts = share of an item's required facts present in the answer (normalised units, case and "
              "number formats); similarity = ROUGE-L F1 with the reference; perplexity = 100 x exp(-mean negative "
              "log-likelihood per reference token); retention = share of general questions the base answered that are "
              "still answered. Composite = weighted mean of the subscores present."), ""]
    return "\n".join(lines)
