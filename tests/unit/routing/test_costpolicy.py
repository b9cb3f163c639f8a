"""The cost-aware policy: monotone in λ, calibrated to a target without labels, and the
N-candidate metrics (quality-cost curve, AIQ, quality at a budget, oracle)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.errors import ConfigError
from routeiq.routing.costpolicy import Target, calibrate, choose, cost_scale, outcome
from routeiq.routing.evaluation import cost_quality_curve, hull_area, multi_model_quality

PRICES = np.array([0.2, 0.2, 0.9, 0.9, 0.2, 0.1, 0.2, 0.2, 0.9])


def problem(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # The expensive models are better on average, as in LLMRouter's data.
    predicted = np.clip(rng.random((n, len(PRICES))) * 0.8 + 0.25 * (PRICES > 0.5), 0, 1)
    tokens = rng.integers(20, 600, n)
    costs = tokens[:, None] * PRICES[None, :] / 1e6
    quality = (rng.random(predicted.shape) < predicted).astype(float)
    return predicted, costs, quality


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(1e-3, 50.0), st.floats(1e-3, 50.0))
def test_raising_lambda_never_raises_cost_or_predicted_quality(seed, a, b) -> None:
    predicted, costs, _ = problem(seed, 80)
    scale = cost_scale(costs)
    lo, hi = sorted((a, b))
    rows = np.arange(len(predicted))
    pick_lo, pick_hi = choose(predicted, costs, lo, scale), choose(predicted, costs, hi, scale)
    # Per request, not only on average.
    assert (costs[rows, pick_hi] <= costs[rows, pick_lo] + 1e-15).all()
    assert (predicted[rows, pick_hi] <= predicted[rows, pick_lo] + 1e-12).all()


@pytest.mark.parametrize("seed", range(5))
def test_a_cost_target_is_met_by_the_smallest_lambda(seed) -> None:
    predicted, costs, _ = problem(seed)
    scale = cost_scale(costs)
    full = outcome(predicted, costs, 0.0, scale)[0]
    target = Target("cost_per_1k_usd", 1000 * full * 0.4)
    lam = calibrate(predicted, costs, target, scale=scale)
    cost, _ = outcome(predicted, costs, lam, scale)
    assert cost <= target.value / 1000 + 1e-15
    # A little less λ would overspend: the target is met tightly, not by a wide margin.
    assert outcome(predicted, costs, lam * 0.98, scale)[0] > target.value / 1000 * 0.97


@pytest.mark.parametrize("seed", range(5))
def test_a_quality_floor_keeps_the_largest_lambda_above_it(seed) -> None:
    predicted, costs, _ = problem(seed)
    scale = cost_scale(costs)
    best = outcome(predicted, costs, 0.0, scale)[1]
    target = Target("quality_floor", best - 0.1)
    lam = calibrate(predicted, costs, target, scale=scale)
    cost, quality = outcome(predicted, costs, lam, scale)
    assert quality >= target.value - 1e-9
    assert outcome(predicted, costs, lam * 1.05, scale)[1] < target.value + 0.01
    assert cost < outcome(predicted, costs, 0.0, scale)[0]


def test_unreachable_targets_serve_as_cheaply_or_as_well_as_possible() -> None:
    predicted, costs, _ = problem(0)
    scale = cost_scale(costs)
    assert calibrate(predicted, costs, Target("cost_per_1k_usd", 0.0), scale=scale) >= 1e3
    assert calibrate(predicted, costs, Target("quality_floor", 1.0), scale=scale) == 0.0
    assert calibrate(predicted, costs, Target("cost_per_1k_usd", 1e9), scale=scale) == 0.0


def test_weights_shift_the_calibration_towards_the_heavier_rows() -> None:
    predicted, costs, _ = problem(1)
    scale = cost_scale(costs)
    target = Target("cost_per_1k_usd", 1000 * outcome(predicted, costs, 0.0, scale)[0] * 0.5)
    heavy_long = np.where(costs[:, 0] > np.median(costs[:, 0]), 10.0, 1.0)
    plain = calibrate(predicted, costs, target, scale=scale)
    weighted = calibrate(predicted, costs, target, scale=scale, weights=heavy_long)
    assert weighted > plain  # long (costly) requests dominate: more pressure on cost


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cost": 1}, "unknown target"),
        ({"cost_per_1k_usd": -1}, ">= 0"),
        ({"quality_floor": 2}, "in \\[0, 1\\]"),
        ({"cost_per_1k_usd": "x"}, "must be a number"),
        ({"cost_per_1k_usd": 1, "quality_floor": 0.5}, "one of"),
        ([1, 2], "one of"),
    ],
)
def test_bad_targets_are_refused_with_the_reason(raw, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Target.parse(raw)


def test_ties_go_to_the_cheaper_candidate() -> None:
    predicted = np.array([[0.5, 0.5, 0.5]])
    costs = np.array([[3.0, 1.0, 2.0]])
    assert choose(predicted, costs, 0.0, 1.0)[0] == 1


# ---------------------------------------------------------------- N-candidate metrics


def test_the_curve_runs_from_the_best_predicted_to_the_cheapest() -> None:
    predicted, costs, quality = problem(2)
    points = cost_quality_curve(predicted, quality, costs)
    assert points[0].lam == 0.0
    costs_along = [p.cost for p in points]
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(costs_along))
    cheapest = costs.min(axis=1).mean()
    assert points[-1].cost == pytest.approx(cheapest, rel=0.05)


def test_hull_area_is_the_mean_of_the_non_decreasing_upper_hull() -> None:
    # A dominated point (0.5, 0.2) below the chord adds nothing; beyond the peak it is flat.
    points = [(0.0, 0.0), (1.0, 1.0), (0.5, 0.2), (2.0, 0.5)]
    assert hull_area(points, 0.0, 1.0) == pytest.approx(0.5, abs=1e-3)
    assert hull_area(points, 0.0, 2.0) == pytest.approx(0.75, abs=1e-3)
    assert np.isnan(hull_area(points, 1.0, 1.0))


def test_perfect_predictions_score_the_oracle_and_beat_every_single_model() -> None:
    _, costs, quality = problem(3)
    models = [f"m{j}" for j in range(len(PRICES))]
    perfect = multi_model_quality(quality, quality, costs, models)
    assert perfect.aiq == pytest.approx(perfect.oracle_aiq)
    assert perfect.max_quality == pytest.approx(perfect.oracle_quality)
    best_cost, best_quality = perfect.singles[perfect.best_single]
    assert best_quality == max(q for _, q in perfect.singles.values())
    half = next(b for b in perfect.at_budget if b.fraction == 0.5)
    assert half.cost <= 0.5 * best_cost + 1e-15
    assert half.quality > best_quality
    noise = multi_model_quality(
        np.random.default_rng(9).random(quality.shape), quality, costs, models
    )
    assert noise.aiq < perfect.aiq
    metrics = perfect.as_metrics()
    assert {"aiq", "quality_at_50pct_cost", "oracle_quality", "best_single_quality"} <= set(metrics)


def test_multi_model_metrics_need_every_candidate_graded() -> None:
    predicted, costs, quality = problem(4, 20)
    quality[0, 0] = np.nan
    with pytest.raises(ValueError, match="every candidate graded"):
        multi_model_quality(predicted, quality, costs, [str(j) for j in range(len(PRICES))])
