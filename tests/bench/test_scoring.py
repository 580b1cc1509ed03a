"""Scoring: facts however they are written, ROUGE-L, subscores, the composite and the bootstrap."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forge_tui.engine.scoring import WEIGHTS, ItemScores, bootstrap, composite, fact_score, normalize, rouge_l, subscores


@pytest.mark.parametrize(("answer", "fact"), [
    ("Keep it under 0.30 NTU.", "0.3 NTU"),
    ("The limit is 0.3NTU", "0.3 NTU"),
    ("Call Dana Okafor on ext. 4,417", "4417"),
    ("dana okafor", "Dana Okafor"),
    ("The shift starts at 6:00.", "06:00"),
    ("a 15 minute check", "15-minute"),
    ("Two operators must be present.", "2 operators"),
    ("twelve hrs", "12 hours"),
    ("It is 2.50 milligrams per litre", "2.5 mg/L"),
    ("Water boils at 100°C", "100"),
    ("Asset P-101.", "P-101"),
])
def test_facts_count_however_they_are_written(answer: str, fact: str) -> None:
    assert fact_score(answer, [fact]) == 1.0


@pytest.mark.parametrize(("answer", "fact"), [
    ("Asset P-1011", "P-101"),       # a longer tag is another asset
    ("Asset P-10", "P-101"),
    ("Keep it under 0.35 NTU", "0.3 NTU"),
    ("Call Dana on 4417", "Dana Okafor"),
    ("It is 13 hours", "12 hours"),
])
def test_near_misses_do_not_count(answer: str, fact: str) -> None:
    assert fact_score(answer, [fact]) == 0.0


def test_partial_facts_and_rouge_l() -> None:
    assert fact_score("Dana Okafor, extension 4471", ["Dana Okafor", "4417"]) == 0.5
    assert rouge_l("pump 1 is asset P-101", "Raw water intake pump 1 is asset P-101.") == pytest.approx(2 * 1 * (5 / 8) / (1 + 5 / 8))
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("same words", "Same words.") == 1.0


def test_subscores_and_composite() -> None:
    items = [ItemScores(facts=1.0, similarity=0.5, nll_sum=2.0, nll_tokens=4),
             ItemScores(facts=0.0, similarity=0.25, nll_sum=2.0, nll_tokens=4),
             ItemScores(correct=1.0), ItemScores(correct=0.0)]
    found = subscores(items)
    assert found["facts"] == 50.0
    assert found["similarity"] == 37.5
    assert found["retention"] == 50.0
    assert found["perplexity"] == pytest.approx(100 * math.exp(-0.5))
    assert composite(found) == pytest.approx(sum(WEIGHTS[k] * v for k, v in found.items()))
    # without retention items the other weights are renormalised
    no_retention = {**found, "retention": None}
    assert composite(no_retention) == pytest.approx(sum(WEIGHTS[k] * no_retention[k] for k in ("facts", "similarity", "perplexity")) / 0.8)


def test_bootstrap_separates_a_real_gain_from_noise() -> None:
    base = [ItemScores(facts=0.0, similarity=0.2, nll_sum=3.0, nll_tokens=1) for _ in range(40)]
    better = [ItemScores(facts=1.0, similarity=0.8, nll_sum=0.5, nll_tokens=1) for _ in range(40)]
    gain = bootstrap(base, better, resamples=200, seed=1)
    assert gain["delta"][0] > 0
    noisy = [ItemScores(facts=float(i % 2), similarity=0.5, nll_sum=1.0, nll_tokens=1) for i in range(40)]
    shuffled = noisy[1:] + noisy[:1]
    same = bootstrap(noisy, shuffled, resamples=200, seed=1)
    assert same["delta"][0] < 0 < same["delta"][1]
    assert bootstrap(base, better, resamples=200, seed=1) == gain  # seeded: repeatable


@given(st.text(max_size=200))
def test_normalize_never_fails_and_is_idempotent_on_its_tokens(text: str) -> None:
    tokens = normalize(text)
    assert normalize(" ".join(tokens)) == tokens
