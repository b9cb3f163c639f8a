"""Evaluation (RouteLLM's metrics, cost, off-policy value) and the promotion gate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from routeiq.routing.assessment import (
    IncomparableError,
    evaluate,
    greedy_actions,
    predict,
    random_baseline,
)
from routeiq.routing.evaluation import off_policy_value, router_quality
from routeiq.routing.plots import plot_strong_weak as plot_curves
from routeiq.routing.routers import FitContext, KNNRouter
from routeiq_trainer.core.gate import decide


def test_metrics_are_routellms_on_the_strong_weak_rows(data) -> None:
    rng = np.random.default_rng(0)
    predicted = rng.random((len(data.validation), 2))
    ev = evaluate("x", predicted, data, cost_weight=0.0)
    q = data.validation.quality
    expected = router_quality(predicted[:, 0] - predicted[:, 1], q[:, 0], q[:, 1])
    assert ev.metrics["apgr"] == pytest.approx(expected.apgr)
    assert ev.metrics["cpt50"] == pytest.approx(expected.cpt50)
    assert ev.metrics["cpt80"] == pytest.approx(expected.cpt80)
    assert ev.metrics["validation_rows"] == len(q)


def test_a_trained_router_beats_the_random_baseline(data) -> None:
    router = KNNRouter.fit(data.train, {"k": 20}, ctx=FitContext())
    ev = evaluate("knn", predict(router, data), data, cost_weight=0.0)
    baseline = random_baseline(data, seed=0, cost_weight=0.0)
    assert baseline.metrics["apgr"] == pytest.approx(0.5, abs=0.05)
    assert ev.metrics["apgr"] > baseline.metrics["apgr"] + 0.15
    assert ev.metrics["best_model_accuracy"] > baseline.metrics["best_model_accuracy"]
    # The 101 quantiles of the win score, for the gateway's threshold strategy.
    quantiles = ev.calibration()["win_score_quantiles"]
    assert len(quantiles) == 101
    assert quantiles == sorted(quantiles)


def test_cost_and_off_policy_value_follow_the_greedy_policy(data) -> None:
    predicted = np.tile([0.9, 0.2], (len(data.validation), 1))  # always the strong model
    ev = evaluate("always-strong", predicted, data, cost_weight=0.0)
    assert ev.metrics["strong_call_pct"] == 100.0
    assert ev.metrics["mean_cost_usd"] == pytest.approx(0.01)
    logged = data.logged
    want = off_policy_value(
        np.zeros(len(logged.actions), dtype=np.int64),
        logged.actions,
        logged.rewards,
        logged.propensities,
    )
    assert ev.metrics["ope_snips"] == pytest.approx(want.snips)
    assert ev.metrics["ope_ips"] == pytest.approx(want.ips)
    # Fully observed rows: the SNIPS estimate is close to the policy's true mean quality.
    assert ev.metrics["ope_snips"] == pytest.approx(ev.metrics["policy_quality"], abs=0.08)


def test_greedy_ties_go_to_the_cheaper_candidate_and_cost_weight_trades_quality() -> None:
    costs = np.tile([0.01, 0.001], (3, 1))
    tied = np.full((3, 2), 0.7)
    assert greedy_actions(tied, costs, 0.0).tolist() == [1, 1, 1]
    close = np.tile([0.75, 0.7], (3, 1))
    assert greedy_actions(close, costs, 0.0).tolist() == [0, 0, 0]
    assert greedy_actions(close, costs, 0.1).tolist() == [1, 1, 1]


def test_a_router_over_other_candidates_is_incomparable(data) -> None:
    router = KNNRouter.fit(data.train, {}, ctx=FitContext())
    router.models = ("strong", "other")
    with pytest.raises(IncomparableError, match="does not score"):
        predict(router, data)


def test_the_curve_is_a_png(tmp_path, data) -> None:
    router = KNNRouter.fit(data.train, {}, ctx=FitContext())
    ev = evaluate("knn", predict(router, data), data, cost_weight=0.0)
    path = plot_curves(
        [ev, random_baseline(data, seed=0, cost_weight=0.0)], tmp_path / "c.png", title="t"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("metric", "challenger", "baseline", "margin", "passed"),
    [
        ("apgr", 0.64, 0.60, 0.01, True),
        ("apgr", 0.605, 0.60, 0.01, False),  # better, but not by the margin
        ("apgr", 0.60, 0.60, 0.0, False),  # equal never passes
        ("apgr", 0.55, 0.60, 0.0, False),
        ("cpt50", 30.0, 40.0, 5.0, True),  # lower is better
        ("cpt50", 38.0, 40.0, 5.0, False),
        ("mean_cost_usd", 0.02, 0.01, 0.0, False),
        ("apgr", math.nan, 0.6, 0.0, False),  # no finite challenger value
        ("apgr", 0.6, math.nan, 0.0, True),  # baseline cannot be scored on the metric
    ],
)
def test_the_gate(metric, challenger, baseline, margin, passed) -> None:
    decision = decide(
        metric=metric,
        margin=margin,
        challenger=challenger,
        baseline=baseline,
        baseline_label="champion v1",
    )
    assert decision.passed is passed
    assert metric in decision.reason
    assert decision.tags()["routeiq.gate"] == ("passed" if passed else "held")
