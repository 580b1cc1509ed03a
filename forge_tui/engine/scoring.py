"""Scoring answers against references: facts present, ROUGE-L similarity, reference perplexity,
retention; the composite and its bootstrap confidence interval. Pure functions over numbers and text.

Normalisation, so a fact counts however it is written: Unicode NFKC and case; thousands separators
(4,417 -> 4417); number formats (0.30 -> 0.3, 06:00 -> 6:00); number words up to ninety (two -> 2);
a number glued to its unit split off (0.3NTU, 15-minute -> 0.3 ntu, 15 minute); unit spellings
(°C, degrees Celsius -> degc; per cent -> percent; milligrams per litre -> mg/l; hours, hrs -> hour;
minutes, mins -> minute; seconds, secs -> second; metres, meters -> m). A fact is present when its
normalised tokens appear, in order and contiguous, among the answer's.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Composite weights: domain knowledge counts most; style (similarity), confidence in the reference
# (perplexity) and what the model must not forget (retention) share the rest.
WEIGHTS = {"facts": 0.4, "similarity": 0.2, "perplexity": 0.2, "retention": 0.2}
SUBSCORES = tuple(WEIGHTS)

# A word boundary in the tokenizer's sense (letters and digits only: "min_" ends a word, which \b
# would not see), so that normalising the tokens again gives the same tokens.
_B = r"(?:(?<![a-z0-9])(?=[a-z0-9])|(?<=[a-z0-9])(?![a-z0-9]))"
_UNITS = [(pattern.replace(r"\b", _B), replacement) for pattern, replacement in [
    (r"°\s*c\b|\bdeg(?:rees?)?\s*c(?:elsius)?\b|\bcelsius\b", "degc"),
    (r"%|\bper\s*cent\b", " percent"),
    (r"\bmilligrams?\s+per\s+lit(?:re|er)\b|\bmg\s+per\s+l\b", "mg/l"),
    (r"\b(?:hours|hrs|hr)\b", "hour"),
    (r"\b(?:minutes|mins|min)\b", "minute"),
    (r"\b(?:seconds|secs|sec)\b", "second"),
    (r"\b(?:metres|meters|metre|meter)\b", "m"),
]]
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORDS = {word: str(value) for value, word in enumerate(_ONES)}
_WORDS.update({word: str(20 + 10 * i) for i, word in enumerate(_TENS)})
_TOKEN = re.compile(r"[a-z0-9]+(?:[-./:][a-z0-9]+)*")


def _canonical(token: str) -> str:
    if re.fullmatch(r"\d+\.\d+", token):
        value = repr(float(token))
        return value[:-2] if value.endswith(".0") else value
    if re.fullmatch(r"\d+", token):
        return str(int(token))
    if re.fullmatch(r"\d{1,2}:\d{2}", token):
        hours, minutes = token.split(":")
        return f"{int(hours)}:{minutes}"
    return _WORDS.get(token, token)


def normalize(text: str) -> list[str]:
    """Text -> comparable tokens (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    for pattern, replacement in _UNITS:
        text = re.sub(pattern, replacement, text)
    text = re.sub(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)-?([a-z]+)(?![a-z0-9])", r"\1 \2", text)  # 0.3ntu, 15-minute
    text = re.sub(rf"{_B}(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)-([a-z]+){_B}", r"\1 \2", text)
    tokens = [_canonical(t) for t in _TOKEN.findall(text)]
    return _join_tens(tokens)


def _join_tens(tokens: list[str]) -> list[str]:
    """"thirty" "five" -> "35" (after word-to-digit mapping: "30" "5")."""
    joined: list[str] = []
    for token in tokens:
        if joined and token.isdigit() and len(token) == 1 and joined[-1] in {str(20 + 10 * i) for i in range(8)}:
            joined[-1] = str(int(joined[-1]) + int(token))
        else:
            joined.append(token)
    return joined


def contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    if not needle:
        return False
    width = len(needle)
    return any(list(haystack[i:i + width]) == list(needle) for i in range(len(haystack) - width + 1))


def fact_score(answer: str, facts: Sequence[str]) -> float:
    """Share of the facts present in the answer (0..1)."""
    tokens = normalize(answer)
    return sum(contains(tokens, normalize(fact)) for fact in facts) / len(facts)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence of normalised tokens), 0..1."""
    a, b = normalize(answer), normalize(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class ItemScores:
    """One model's scores on one item. Eval items carry facts/similarity/nll; retention items `correct`."""

    facts: float | None = None        # 0..1, None when the item lists no facts
    similarity: float | None = None   # 0..1
    nll_sum: float = 0.0              # reference tokens' negative log-likelihood, summed
    nll_tokens: int = 0
    correct: float | None = None      # retention: 1.0 when every fact is present


def subscores(items: Sequence[ItemScores]) -> dict[str, float | None]:
    """Each subscore 0-100 over items (None when no item measures it). Perplexity is reported as
    100 x exp(-mean NLL per reference token): the geometric-mean probability of the reference."""
    def mean(values: list[float]) -> float | None:
        return 100 * sum(values) / len(values) if values else None

    tokens = sum(i.nll_tokens for i in items)
    return {
        "facts": mean([i.facts for i in items if i.facts is not None]),
        "similarity": mean([i.similarity for i in items if i.similarity is not None]),
        "perplexity": 100 * math.exp(-sum(i.nll_sum for i in items) / tokens) if tokens else None,
        "retention": mean([i.correct for i in items if i.correct is not None]),
    }


def composite(scores: dict[str, float | None]) -> float:
    """Weighted mean of the subscores present (weights renormalised over them), 0-100."""
    present = {k: v for k, v in scores.items() if v is not None}
    total = sum(WEIGHTS[k] for k in present)
    return sum(WEIGHTS[k] * v for k, v in present.items()) / total if total else 0.0


def bootstrap(base: Sequence[ItemScores], tuned: Sequence[ItemScores], *, resamples: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap over items: 95% intervals for the base and tuned composites and their delta.

    Each resample draws the items (eval and retention apart, so both stay represented) with
    replacement, the same draw for both models, and recomputes every composite.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = [np.array([i for i, s in enumerate(base) if s.correct is None]),
              np.array([i for i, s in enumerate(base) if s.correct is not None])]
    found: dict[str, list[float]] = {"base": [], "tuned": [], "delta": []}
    for _ in range(resamples):
        draw = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups if len(g)])
        b = composite(subscores([base[i] for i in draw]))
        t = composite(subscores([tuned[i] for i in draw]))
        found["base"].append(b)
        found["tuned"].append(t)
        found["delta"].append(t - b)
    return {key: [round(float(np.percentile(v, 2.5)), 2), round(float(np.percentile(v, 97.5)), 2)] for key, v in found.items()}
