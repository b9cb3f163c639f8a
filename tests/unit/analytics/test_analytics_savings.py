"""Savings formulas: always-strong, random-at-equal-quality, always-X over N models and the
best single model, worked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.routing.datasets import ModelPrice
from routeiq_analytics.core.buckets import Mean
from routeiq_analytics.core.savings import (
    RandomBaseline,
    best_single_model,
    counterfactuals,
    random_at_equal_quality,
    saved,
)


def mix(
    target: float,
    strong_quality: float,
    weak_quality: float | None,
    *,
    strong_cost: float = 10.0,
    weak_cost: float = 2.0,
) -> RandomBaseline:
    return random_at_equal_quality(
        strong_cost_usd=strong_cost,
        weak_cost_usd=weak_cost,
        target_quality=target,
        strong_quality=strong_quality,
        weak_quality=weak_quality,
    )


@pytest.mark.parametrize(
    ("target", "strong_quality", "weak_quality", "share", "cost", "reachable"),
    [
        # q_s = 0.9, q_w = 0.5, observed 0.8 → p* = (0.8 - 0.5) / (0.9 - 0.5) = 0.75;
        # R = 0.75 × 10 + 0.25 × 2 = 8.0.
        pytest.param(
            0.8, 0.9, 0.5, pytest.approx(0.75), pytest.approx(8.0), True, id="matching-the-mix"
        ),
        # Quality above both models: the best mix, and it says unreachable.
        pytest.param(0.95, 0.9, 0.5, 1.0, 10.0, False, id="above-both-models"),
        pytest.param(0.3, 0.9, 0.5, 0.0, 2.0, True, id="below-the-weak-model-is-all-weak"),
        pytest.param(0.6, 0.5, 0.7, 0.0, 2.0, True, id="weak-at-least-as-good-is-all-weak"),
    ],
)
def test_the_random_mix_at_the_observed_quality(
    target: float,
    strong_quality: float,
    weak_quality: float,
    share: float,
    cost: float,
    reachable: bool,
) -> None:
    b = mix(target, strong_quality, weak_quality)
    assert (b.strong_share, b.cost_usd) == (share, cost)
    assert b.reachable is reachable


def test_savings_against_the_matching_mix() -> None:
    b = mix(0.8, 0.9, 0.5)
    assert b.reason is None
    assert saved(b.cost_usd, 5.0) == {
        "baseline_usd": pytest.approx(8.0),
        "saved_usd": pytest.approx(3.0),
        "saved_pct": pytest.approx(37.5),
    }


def test_missing_feedback_gives_no_baseline_and_the_reason() -> None:
    b = mix(0.8, 0.9, None)
    assert b.cost_usd is None
    assert b.strong_share is None
    assert b.reason == "no feedback on the weak model in this window"
    assert saved(None, 1.0) == {"baseline_usd": None, "saved_usd": None, "saved_pct": None}
    assert saved(0.0, 0.0)["saved_pct"] is None


unit = st.floats(min_value=0, max_value=1, allow_nan=False)
money = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(
    st.floats(min_value=0, max_value=0.98),
    st.floats(min_value=0.01, max_value=1.0),
    unit,
    money,
    money,
)
def test_reachable_mix_has_the_target_quality_and_a_cost_between_the_models(
    q_weak: float, gap_fraction: float, position: float, strong: float, weak: float
) -> None:
    q_strong = q_weak + gap_fraction * (1.0 - q_weak)
    target = q_weak + position * (q_strong - q_weak)
    b = mix(target, q_strong, q_weak, strong_cost=strong, weak_cost=weak)
    assert b.reachable is True
    assert b.strong_share is not None
    assert b.cost_usd is not None
    mix_quality = b.strong_share * q_strong + (1 - b.strong_share) * q_weak
    assert mix_quality == pytest.approx(target, abs=1e-9)
    assert min(strong, weak) - 1e-6 <= b.cost_usd <= max(strong, weak) + 1e-6


# ------------------------------------------------------------------ N models

# Priced differently per direction: which one is "most expensive" depends on the token mix.
READS = ModelPrice(5.0, 5.0)
WRITES = ModelPrice(1.0, 10.0)
CHEAP = ModelPrice(0.1, 0.1)
TABLE = {"reads": READS, "writes": WRITES, "cheap": CHEAP}


def test_always_costs_for_three_models_and_the_auto_pair() -> None:
    # 3000 in, 1000 out: reads (15000 + 5000) / 1e6 = 0.02; writes (3000 + 10000) / 1e6 =
    # 0.013; cheap 400 / 1e6 = 0.0004.
    cf = counterfactuals(
        input_tokens=3000,
        output_tokens=1000,
        candidates=["cheap", "writes", "reads"],
        prices=TABLE,
        pair=None,
    )
    assert list(cf.always_usd) == ["reads", "writes", "cheap"]
    assert cf.always_usd == pytest.approx({"reads": 0.02, "writes": 0.013, "cheap": 0.0004})
    assert (cf.most_expensive, cf.strong, cf.weak) == ("reads", "reads", "cheap")
    assert (cf.strong_usd, cf.weak_usd) == (pytest.approx(0.02), pytest.approx(0.0004))
    assert cf.pair_configured is False
    assert cf.unpriced == ()


def test_the_token_mix_decides_which_model_is_most_expensive() -> None:
    def top(tokens_in: int, tokens_out: int) -> str | None:
        return counterfactuals(
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            candidates=TABLE,
            prices=TABLE,
            pair=None,
        ).most_expensive

    assert top(1000, 0) == "reads"  # 0.005 vs 0.001
    assert top(0, 1000) == "writes"  # 0.005 vs 0.01
    # No tokens at all (an empty window): list price (in + out) ranks, writes 11 > reads 10.
    assert top(0, 0) == "writes"


def test_a_configured_pair_is_used_as_given_and_unpriced_models_are_listed() -> None:
    cf = counterfactuals(
        input_tokens=1000,
        output_tokens=1000,
        candidates=["reads", "cheap", "nobody"],
        served=["ghost", "reads"],
        prices=TABLE,
        pair=("writes", "cheap"),
    )
    assert list(cf.always_usd) == ["reads", "cheap"]
    assert (cf.strong, cf.weak, cf.pair_configured) == ("writes", "cheap", True)
    assert cf.strong_usd == pytest.approx(0.011)
    assert cf.unpriced == ("ghost", "nobody")


def _graded(mean: float, n: int) -> Mean:
    return Mean(mean * n, n)


def test_best_single_model_is_the_best_graded_enough() -> None:
    always = {"a": 3.0, "b": 2.0, "c": 1.0}
    quality = {"a": _graded(0.9, 5), "b": _graded(0.7, 20), "c": _graded(0.6, 40)}
    best = best_single_model(always_usd=always, quality=quality, min_graded=20)
    # a is better but graded only 5 times.
    assert (best.model, best.quality, best.graded, best.cost_usd) == ("b", 0.7, 20, 2.0)
    assert best.reason is None
    assert best_single_model(always_usd=always, quality=quality, min_graded=5).model == "a"
    none = best_single_model(always_usd=always, quality=quality, min_graded=41)
    assert none.model is None
    assert none.reason == "no candidate has 41 graded answers in this window (most: c with 40)"
    ungraded = best_single_model(always_usd=always, quality={}, min_graded=1)
    assert ungraded.reason == "no candidate has 1 graded answer in this window (none graded)"


@given(
    st.lists(
        st.tuples(money, unit, st.integers(min_value=0, max_value=50)), min_size=1, max_size=8
    ),
    st.integers(min_value=1, max_value=50),
)
def test_best_single_model_has_the_top_quality_among_the_eligible(
    rows: list[tuple[float, float, int]], min_graded: int
) -> None:
    always = {f"m{i}": cost for i, (cost, _, _) in enumerate(rows)}
    quality = {f"m{i}": _graded(q, n) for i, (_, q, n) in enumerate(rows)}
    best = best_single_model(always_usd=always, quality=quality, min_graded=min_graded)
    eligible = [m for m in always if quality[m].count >= min_graded]
    if not eligible:
        assert best.model is None
        assert best.reason is not None
        return
    assert best.model in eligible
    assert best.quality is not None
    top = max(quality[m].value or 0.0 for m in eligible)
    assert best.quality == top
    # Among equally good models, the cheapest.
    assert best.cost_usd == min(always[m] for m in eligible if quality[m].value == top)
