"""Savings formulas: always-strong and random-at-equal-quality, worked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq_analytics.core.savings import random_at_equal_quality, saved


def test_random_mix_matching_the_observed_quality() -> None:
    # q_s = 0.9, q_w = 0.5, observed 0.8 → p* = (0.8 - 0.5) / (0.9 - 0.5) = 0.75;
    # R = 0.75 × 10 + 0.25 × 2 = 8.0.
    b = random_at_equal_quality(
        strong_cost_usd=10.0,
        weak_cost_usd=2.0,
        target_quality=0.8,
        strong_quality=0.9,
        weak_quality=0.5,
    )
    assert b.strong_share == pytest.approx(0.75)
    assert b.cost_usd == pytest.approx(8.0)
    assert b.reachable is True
    assert b.reason is None
    assert saved(b.cost_usd, 5.0) == {
        "baseline_usd": pytest.approx(8.0),
        "saved_usd": pytest.approx(3.0),
        "saved_pct": pytest.approx(37.5),
    }


def test_quality_above_both_models_uses_the_best_mix_and_says_unreachable() -> None:
    b = random_at_equal_quality(
        strong_cost_usd=10.0,
        weak_cost_usd=2.0,
        target_quality=0.95,
        strong_quality=0.9,
        weak_quality=0.5,
    )
    assert b.strong_share == 1.0
    assert b.cost_usd == 10.0
    assert b.reachable is False


def test_quality_below_the_weak_model_is_all_weak() -> None:
    b = random_at_equal_quality(
        strong_cost_usd=10.0,
        weak_cost_usd=2.0,
        target_quality=0.3,
        strong_quality=0.9,
        weak_quality=0.5,
    )
    assert (b.strong_share, b.cost_usd, b.reachable) == (0.0, 2.0, True)


def test_weak_model_at_least_as_good_means_all_weak() -> None:
    b = random_at_equal_quality(
        strong_cost_usd=10.0,
        weak_cost_usd=2.0,
        target_quality=0.6,
        strong_quality=0.5,
        weak_quality=0.7,
    )
    assert (b.strong_share, b.cost_usd, b.reachable) == (0.0, 2.0, True)


def test_missing_feedback_gives_no_baseline_and_the_reason() -> None:
    b = random_at_equal_quality(
        strong_cost_usd=10.0,
        weak_cost_usd=2.0,
        target_quality=0.8,
        strong_quality=0.9,
        weak_quality=None,
    )
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
    b = random_at_equal_quality(
        strong_cost_usd=strong,
        weak_cost_usd=weak,
        target_quality=target,
        strong_quality=q_strong,
        weak_quality=q_weak,
    )
    assert b.reachable is True
    assert b.strong_share is not None
    assert b.cost_usd is not None
    mix_quality = b.strong_share * q_strong + (1 - b.strong_share) * q_weak
    assert mix_quality == pytest.approx(target, abs=1e-9)
    assert min(strong, weak) - 1e-6 <= b.cost_usd <= max(strong, weak) + 1e-6
