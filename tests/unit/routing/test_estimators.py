"""Doubly robust labels: bandit rows get a label for every candidate, full rows keep theirs."""

from __future__ import annotations

import numpy as np
from routeiq.routing.estimators import doubly_robust
from routeiq.routing.routers import TrainingData


def _bandit(full: TrainingData, actions: np.ndarray) -> TrainingData:
    """``full`` as a gateway would have logged it: only the served model's quality."""
    n = len(full)
    quality = np.full_like(full.quality, np.nan)
    quality[np.arange(n), actions] = full.quality[np.arange(n), actions]
    return TrainingData(embeddings=full.embeddings, quality=quality, models=full.models)


def test_doubly_robust_fills_every_candidate_of_bandit_rows(synthetic) -> None:
    full, _ = synthetic
    n = len(full)
    actions = np.random.default_rng(2).integers(0, 2, n).astype(np.int64)
    out = doubly_robust(_bandit(full, actions), actions, np.full(n, 0.5), seed=0)
    assert np.isfinite(out.quality).all()
    assert ((out.quality >= 0) & (out.quality <= 1)).all()
    assert out.weights is not None
    assert (out.weights == 1).all()
    # The unobserved model's pseudo-label comes from similar queries: where "b" is right
    # (its cluster) it is high far more often than where it is wrong.
    unobserved_b = actions == 0
    truth = full.quality[unobserved_b, 1]
    pseudo = out.quality[unobserved_b, 1]
    assert pseudo[truth == 1].mean() > pseudo[truth == 0].mean() + 0.3


def test_doubly_robust_leaves_full_information_rows_alone(synthetic) -> None:
    _, full = synthetic
    n = len(full)
    out = doubly_robust(full, np.zeros(n, np.int64), np.full(n, 0.5), seed=0)
    assert np.array_equal(out.quality, full.quality)


def test_a_certain_choice_keeps_its_observed_label(synthetic) -> None:
    # With propensity 1 the correction is the whole residual: q̂_a + (q_a − q̂_a) = q_a,
    # whatever the reward model predicted for the served model.
    full, _ = synthetic
    n = len(full)
    actions = np.zeros(n, np.int64)
    out = doubly_robust(_bandit(full, actions), actions, np.ones(n), seed=0)
    assert np.allclose(out.quality[:, 0], full.quality[:, 0])
