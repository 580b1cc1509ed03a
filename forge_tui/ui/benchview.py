"""What the Compare screen shows of a run's benchmark, folded from its event log (no textual here).

The benchmark writes one `bench_item` event per item, with both models' answers and scores, then the
final `bench_result`; folding them as they arrive lets the table fill while the benchmark runs. The
subscores shown meanwhile are computed over the items so far, with the engine's own scoring; the
confidence interval comes with the final result.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge_tui.engine.events import Record
from forge_tui.engine.fsutil import read_json_object
from forge_tui.engine.scoring import SUBSCORES, ItemScores, composite, subscores

ITEM_FIELDS = frozenset({"id", "kind", "question", "reference", "facts", "base", "tuned"})
SAME_WITHIN = 1.0   # item composites closer than this (0-100) count as unchanged
FILTERS = ("all", "improved", "regressed")


def item_scores(side: dict[str, Any]) -> ItemScores:
    return ItemScores(facts=side.get("facts"), similarity=side.get("similarity"), nll_sum=side.get("nll_sum", 0.0),
                      nll_tokens=side.get("nll_tokens", 0), correct=side.get("correct"))


def item_composite(side: dict[str, Any]) -> float:
    """One model's composite on one item, 0-100."""
    return composite(subscores([item_scores(side)]))


def verdict(item: dict[str, Any]) -> str:
    change = item_composite(item["tuned"]) - item_composite(item["base"])
    return "improved" if change >= SAME_WITHIN else "regressed" if change <= -SAME_WITHIN else "same"


@dataclass
class BenchView:
    state: str = "none"                  # none | running | done | failed
    done: int = 0
    total: int | None = None
    seconds: float | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None  # RUN/bench/result.json once finished
    error: str | None = None

    def apply(self, events: list[Record]) -> None:
        for event in events:
            with contextlib.suppress(KeyError, TypeError):  # an event missing fields is passed over
                self._apply(event)

    def _apply(self, event: Record) -> None:
        kind = event.get("type")
        if kind == "bench_started":
            self.items, self.result, self.error, self.done, self.seconds = [], None, None, 0, None
            self.state, self.total = "running", event["items"]  # a new benchmark replaces the last one
        elif kind == "bench_item" and set(event) >= ITEM_FIELDS:
            self.items.append(event)
        elif kind == "bench_progress":
            self.done, self.total, self.seconds = event["done"], event["total"], event["seconds"]
        elif kind == "bench_result":
            self.state, self.seconds = "done", event["seconds"]
            self.result = _read_result(Path(event["result"]))
        elif kind == "bench_failed":
            self.state, self.error = "failed", event["message"]

    def summary(self) -> list[tuple[str, float | None, float | None]]:
        """(score, base, tuned) rows: composite first, then each subscore."""
        if self.result is not None:
            base, tuned = self.result["base"], self.result["tuned"]
            return [("composite", base["composite"], tuned["composite"]),
                    *((k, base["subscores"][k], tuned["subscores"][k]) for k in SUBSCORES)]
        sides = [subscores([item_scores(item[name]) for item in self.items]) for name in ("base", "tuned")]
        if not self.items:
            return []
        return [("composite", composite(sides[0]), composite(sides[1])), *((k, sides[0][k], sides[1][k]) for k in SUBSCORES)]

    def interval(self) -> str:
        if self.result is None:
            return "95% CI: when every item is scored" if self.items else ""
        low, high = self.result["ci95"]["delta"]
        verdict_ = "significant" if self.result.get("significant") else "not significant"
        return f"95% CI of the composite's change {low:+.1f} .. {high:+.1f} ({verdict_}, {len(self.items)} items)"

    def shown_items(self, which: str) -> list[dict[str, Any]]:
        return [item for item in self.items if which == "all" or verdict(item) == which]


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        return read_json_object(path)
    except (OSError, ValueError):
        return None

