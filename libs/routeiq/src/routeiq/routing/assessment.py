"""A router's quality on the validation rows: RouteLLM's metrics for the strong/weak pair,
the quality-cost curve over all N candidates, cost, and off-policy value. The trainer's gate,
its MLflow metrics and ``routeiq eval`` all read these.

* APGR, CPT(50%), CPT(80%), AUC: RouteLLM's strong/weak threshold sweep
  (``routeiq.routing.evaluation.router_quality``, ties handled) on the rows where both the
  strong and the weak model were graded, with win score ``q̂_strong − q̂_weak``;
* best-model accuracy: how often the top-scored candidate is one of the truly best ones, on
  rows where at least two candidates were graded (the pick restricted to graded candidates);
* on the rows where every candidate was graded: the cost-aware policy's quality-cost curve,
  its AIQ, quality at 25/50/75/100% of the best single model's cost (λ calibrated without
  labels), and the best-single-model and oracle baselines (``evaluation.multi_model_quality``);
* the greedy policy ``argmax_j q̂_j − cost_weight · cost_j / max mean cost`` (ties → cheaper):
  its mean cost per request (USD), its mean quality where graded, and its off-policy value
  from the logged decisions (IPS and self-normalised IPS).

Calibration data for the gateway: ``win_score_quantiles`` (the threshold strategy: the 101
quantiles of the win score) and ``policy_sample`` (the cost-aware strategy: predicted
qualities and prompt tokens of up to 512 validation rows, from which it calibrates λ before
live traffic has).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import RouteIQError
from routeiq.routing.costpolicy import choose, cost_scale
from routeiq.routing.evaluation import (
    MultiModelQuality,
    RouterQuality,
    best_model_accuracy,
    multi_model_quality,
    off_policy_value,
)
from routeiq.routing.evaluation import router_quality as _router_quality
from routeiq.routing.featurizer import Featurizer
from routeiq.routing.prepare import PreparedData
from routeiq.routing.routers import Router, RouterError

F64 = NDArray[np.float64]
RANDOM_DRAWS = 20
POLICY_SAMPLE_ROWS = 512


@dataclass(frozen=True)
class Evaluation:
    """One router's metrics on one validation set, and the points of its curve."""

    label: str
    metrics: dict[str, float]
    quality: RouterQuality | None
    win_scores: F64
    multi: MultiModelQuality | None = None
    predicted: F64 | None = None
    tokens: F64 | None = None
    scale: float = 1.0

    def calibration(self) -> dict[str, Any]:
        """What the gateway's strategies calibrate on before live traffic has arrived."""
        out: dict[str, Any] = {}
        if self.win_scores.size:
            grid = np.linspace(0.0, 1.0, 101)
            out["win_score_quantiles"] = [float(q) for q in np.quantile(self.win_scores, grid)]
        if self.predicted is not None and len(self.predicted):
            rows = np.random.default_rng(0).permutation(len(self.predicted))
            rows = np.sort(rows[:POLICY_SAMPLE_ROWS])
            out["cost_scale_usd"] = self.scale
            out["policy_sample"] = {
                "quality": np.round(self.predicted[rows], 6).tolist(),
                "tokens": (
                    np.round(self.tokens[rows], 1).tolist() if self.tokens is not None else None
                ),
            }
        return out


class IncomparableError(RouteIQError):
    """A router cannot be scored on these rows (other candidates, or it needs query text)."""


def predict(router: Router, data: PreparedData, *, featurizer: Featurizer | None = None) -> F64:
    """The router's expected quality of every candidate on the validation rows.

    ``featurizer`` is the pipeline the router was trained on (a bundle's); when it is not the
    one that computed these rows' vectors, the rows are re-featurised from their text, or,
    without text (shards), the router is incomparable here.
    """
    missing = sorted(set(data.models) - set(router.models))
    if missing:
        raise IncomparableError(f"it does not score candidate(s) {missing}")
    if router.needs_text and data.validation.texts is None:
        raise IncomparableError(
            f"it is a {router.kind} router, which reads query text, and these rows have none"
        )
    features = data.validation.embeddings
    if featurizer is not None and data.features_id and featurizer.id != data.features_id:
        if data.validation.texts is None:
            raise IncomparableError(
                f"it reads {featurizer.id} features and these rows carry {data.features_id} "
                "features without their text"
            )
        features = featurizer.encode(data.validation.texts)
    try:
        raw = router.predict(features, data.validation.texts)
    except RouterError as exc:
        raise IncomparableError(str(exc)) from exc
    if router.models == data.models:
        return np.asarray(raw, dtype=np.float64)
    # Trained on another candidate order (or a superset): take its columns by name.
    cols = [router.models.index(m) for m in data.models]
    return np.asarray(raw, dtype=np.float64)[:, cols]


def evaluate(label: str, predicted: F64, data: PreparedData, *, cost_weight: float) -> Evaluation:
    """Every metric of ``predicted`` (n_val, m) against the validation labels."""
    q = data.validation.quality
    s, w = data.strong_index, data.weak_index
    metrics: dict[str, float] = {"validation_rows": float(len(q))}
    pair = np.isfinite(q[:, s]) & np.isfinite(q[:, w])
    win = predicted[:, s] - predicted[:, w]
    quality: RouterQuality | None = None
    if pair.sum() >= 2 and q[pair, s].mean() != q[pair, w].mean():
        quality = _router_quality(win[pair], q[pair, s], q[pair, w])
        metrics.update(quality.as_metrics())
        metrics["strong_quality"] = quality.strong_quality
        metrics["weak_quality"] = quality.weak_quality
    metrics["sweep_rows"] = float(pair.sum())
    multi: MultiModelQuality | None = None
    full = np.isfinite(q).all(axis=1)
    if full.sum() >= 2:
        multi = multi_model_quality(
            predicted[full], q[full], data.validation_costs[full], data.models
        )
        metrics.update(multi.as_metrics())
        metrics["graded_rows"] = float(full.sum())
    graded = np.isfinite(q).sum(1) >= 2
    if graded.any():
        masked = np.where(np.isfinite(q[graded]), predicted[graded], -np.inf)
        metrics["best_model_accuracy"] = best_model_accuracy(masked, q[graded])
    actions = greedy_actions(predicted, data.validation_costs, cost_weight)
    rows = np.arange(len(q))
    metrics["mean_cost_usd"] = float(np.mean(data.validation_costs[rows, actions]))
    metrics["strong_cost_usd"] = float(np.mean(data.validation_costs[:, s]))
    metrics["weak_cost_usd"] = float(np.mean(data.validation_costs[:, w]))
    metrics["strong_call_pct"] = float(np.mean(actions == s) * 100.0)
    picked = q[rows, actions]
    if np.isfinite(picked).any():
        metrics["policy_quality"] = float(np.nanmean(picked))
    logged = data.logged
    usable = logged.usable
    if usable.any():
        ope = off_policy_value(
            actions[usable],
            logged.actions[usable],
            logged.rewards[usable],
            logged.propensities[usable],
        )
        metrics["ope_ips"] = ope.ips
        metrics["ope_snips"] = ope.snips
        metrics["ope_logged"] = ope.logged
        metrics["ope_matched"] = float(ope.matched)
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    return Evaluation(
        label,
        metrics,
        quality,
        win[pair] if pair.any() else np.zeros(0),
        multi,
        predicted,
        data.validation_tokens,
        cost_scale(data.validation_costs),
    )


def greedy_actions(predicted: F64, costs: F64, cost_weight: float) -> NDArray[np.int64]:
    """Per row, the candidate with the best predicted quality net of weighted cost (the
    cost-aware policy at λ = ``cost_weight``); ties go to the cheaper candidate."""
    return choose(predicted, costs, cost_weight, cost_scale(costs))


def random_baseline(data: PreparedData, *, seed: int, cost_weight: float) -> Evaluation:
    """A router that scores uniformly at random, averaged over ``RANDOM_DRAWS`` seeded draws.

    Its APGR is 0.5 in expectation; the mean over draws makes the baseline stable enough to
    gate and test against.
    """
    rng = np.random.default_rng(seed)
    n, m = data.validation.quality.shape
    draws = [
        evaluate("random", rng.random((n, m)), data, cost_weight=cost_weight)
        for _ in range(RANDOM_DRAWS)
    ]
    keys = set.intersection(*(set(d.metrics) for d in draws))
    metrics = {k: float(np.mean([d.metrics[k] for d in draws])) for k in sorted(keys)}
    return Evaluation("random", metrics, draws[0].quality, draws[0].win_scores, draws[0].multi)
