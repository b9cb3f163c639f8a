"""RouteLLM's metrics: the sweep, APGR, CPT, ties, and off-policy estimates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.routing.datasets import GPT4, MIXTRAL, load_gsm8k
from routeiq.routing.evaluation import (
    bootstrap_quality,
    cpt,
    off_policy_value,
    router_quality,
    sweep,
)


def test_oracle_beats_random_and_random_is_about_half() -> None:
    ds = load_gsm8k()
    strong, weak = ds.column(GPT4), ds.column(MIXTRAL)
    rng = np.random.default_rng(0)
    random_apgr = np.mean(
        [router_quality(rng.random(len(ds)), strong, weak).apgr for _ in range(30)]
    )
    assert random_apgr == pytest.approx(0.5, abs=0.03)
    oracle = router_quality(strong - weak, strong, weak)
    assert oracle.apgr > 1.0  # routing only the weak model's failures beats always-strong
    assert oracle.cpt80 < 30.0


def test_the_sweep_runs_from_all_strong_to_no_strong() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    points = sweep(scores, np.ones(5), np.zeros(5))
    assert points[0].strong_pct == 100.0  # score >= min edge: everything strong
    assert points[-1].strong_pct == 0.0  # score > max edge: nothing strong
    assert [p.quality for p in points] == [p.strong_pct / 100 for p in points]


def test_ties_give_repeated_points_without_failing() -> None:
    scores = np.array([0.0] * 50 + [1.0] * 50)  # pandas.qcut would refuse these edges
    strong = np.r_[np.zeros(50), np.ones(50)]
    q = router_quality(scores, strong, np.zeros(100))
    # Points (0 %, 0), (50 %, 0.5) and (100 %, 0.5): the perfect split, reached at 50 %.
    assert q.apgr == pytest.approx(0.75)
    assert q.cpt50 == pytest.approx(25.0)


def test_cpt_interpolates_the_first_crossing() -> None:
    from routeiq.routing.evaluation import SweepPoint

    points = [SweepPoint(0, 0.0, 0.5), SweepPoint(0, 50.0, 0.7), SweepPoint(0, 100.0, 0.9)]
    assert cpt(points, 0.6) == pytest.approx(25.0)
    assert cpt(points, 0.5) == 0.0
    assert cpt(points, 0.95) == 100.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=10, max_size=60), st.integers(0, 2**31 - 1))
def test_the_curve_spans_always_weak_to_always_strong_and_ignores_scale(
    scores: list[float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = len(scores)
    strong = rng.integers(0, 2, n).astype(float)
    weak = rng.integers(0, 2, n).astype(float)
    if strong.mean() == weak.mean():
        strong[0], weak[0] = 1.0, 0.0
        if strong.mean() == weak.mean():
            return
    s = np.asarray(scores)
    q = router_quality(s, strong, weak)
    ends = sorted(q.points, key=lambda p: p.strong_pct)
    assert (ends[0].strong_pct, ends[0].quality) == (0.0, pytest.approx(weak.mean()))
    assert (ends[-1].strong_pct, ends[-1].quality) == (100.0, pytest.approx(strong.mean()))
    # Scaling by a power of two is exact in floating point, so the sweep is identical.
    assert router_quality(4 * s, strong, weak).apgr == pytest.approx(q.apgr)


def test_bootstrap_interval_contains_the_point_estimate() -> None:
    ds = load_gsm8k()
    strong, weak = ds.column(GPT4), ds.column(MIXTRAL)
    scores = strong - weak + np.random.default_rng(1).normal(0, 1, len(ds))
    ci = bootstrap_quality(scores, strong, weak, samples=200, seed=3)
    assert ci["apgr"].low <= ci["apgr"].value <= ci["apgr"].high
    assert ci["apgr"].high - ci["apgr"].low < 0.3


def test_off_policy_value_recovers_a_known_policy_value() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    # Two actions, rewards 0.8 (action 1) and 0.3 (action 0); logging picks 1 with p = 0.3.
    logged = (rng.random(n) < 0.3).astype(int)
    prop = np.where(logged == 1, 0.3, 0.7)
    rewards = np.where(logged == 1, rng.random(n) < 0.8, rng.random(n) < 0.3).astype(float)
    est = off_policy_value(np.ones(n, dtype=int), logged, rewards, prop)
    assert est.snips == pytest.approx(0.8, abs=0.02)
    assert est.ips == pytest.approx(0.8, abs=0.04)
    with pytest.raises(ValueError, match="positive"):
        off_policy_value([1], [1], [1.0], [0.0])
