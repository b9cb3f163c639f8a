"""Off-policy estimators for bandit-logged routing data (numpy only, no I/O).

A gateway logs, per decision, the model it served and that model's selection probability; the
other candidates' quality is unobserved. ``doubly_robust`` turns such rows into full labels
a router can train on, combining a reward model's prediction with the logged observation
weighted by its inverse propensity (Dudík, Langford & Li, "Doubly Robust Policy Evaluation
and Learning", 2011).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.routers.base import FitContext, TrainingData
from routeiq.routing.routers.knn import KNNRouter

# Neighbours of the kNN reward model.
REWARD_MODEL_K = 20


def doubly_robust(
    data: TrainingData,
    actions: NDArray[np.int64],
    propensities: NDArray[np.float64],
    *,
    seed: int,
    max_weight: float = 20.0,
) -> TrainingData:
    """Doubly robust labels for bandit rows: every candidate gets a pseudo-quality.

    For a row that observed only its served model ``a`` (with propensity ``p``), candidate j's
    label is ``q̂_j + 1[j = a] / p · (q_a − q̂_a)``, clipped to [0, 1], where ``q̂`` comes from
    a kNN reward model cross-fitted on the other half of the rows (so a row never corrects
    its own prediction) and ``1/p`` is capped at ``max_weight``. Fully observed rows keep
    their labels. All weights become 1: the correction is in the labels.
    """
    observed = data.observed
    bandit = (observed.sum(1) == 1) & (actions >= 0) & np.isfinite(propensities)
    bandit &= propensities > 0
    if not bandit.any():
        return data
    n = len(data)
    fold = np.random.default_rng(seed).integers(0, 2, n)
    direct = np.zeros_like(data.quality)
    for f in (0, 1):
        fit_rows = np.flatnonzero(fold != f)
        pred_rows = np.flatnonzero(fold == f)
        if fit_rows.size == 0 or pred_rows.size == 0:
            continue
        model = KNNRouter.fit(
            data.subset(fit_rows), {"k": REWARD_MODEL_K}, ctx=FitContext(seed=seed)
        )
        direct[pred_rows] = model.predict(data.embeddings[pred_rows])
    quality = data.quality.copy()
    rows = np.flatnonzero(bandit)
    a = actions[rows]
    pseudo = direct[rows].copy()
    inv = np.minimum(1.0 / propensities[rows], max_weight)
    pseudo[np.arange(rows.size), a] += inv * (data.quality[rows, a] - direct[rows, a])
    quality[rows] = np.clip(pseudo, 0.0, 1.0)
    # The same rows with pseudo-outcomes for labels, each weighing one (the correction is in them).
    return replace(data, quality=quality, weights=np.ones_like(quality))
