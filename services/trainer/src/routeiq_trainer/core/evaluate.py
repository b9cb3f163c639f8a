"""A router's quality on the validation rows: RouteLLM's metrics, cost, and off-policy value.

* APGR, CPT(50%), CPT(80%), AUC: RouteLLM's strong/weak threshold sweep
  (``routeiq.routing.evaluation.router_quality``, ties handled) on the rows where both the
  strong and the weak model were graded, with win score ``q̂_strong − q̂_weak``;
* best-model accuracy: how often the top-scored candidate is one of the truly best ones, on
  rows where at least two candidates were graded (the pick restricted to graded candidates);
* the greedy policy ``argmax_j q̂_j − cost_weight · cost_j / max mean cost`` (ties → cheaper):
  its mean cost per request (USD), its mean quality where graded, and its off-policy value
  from the logged decisions (IPS and self-normalised IPS).

The gateway's threshold strategy reads ``win_score_quantiles``: the 101 quantiles of the win
score on the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from routeiq.routing.evaluation import RouterQuality, best_model_accuracy, off_policy_value
from routeiq.routing.evaluation import router_quality as _router_quality
from routeiq.routing.routers import Router, RouterError

from routeiq_trainer.core.data import PreparedData
from routeiq_trainer.errors import TrainerError

F64 = NDArray[np.float64]
RANDOM_DRAWS = 20


@dataclass(frozen=True)
class Evaluation:
    """One router's metrics on one validation set, and the points of its curve."""

    label: str
    metrics: dict[str, float]
    quality: RouterQuality | None
    win_scores: F64

    def calibration(self) -> dict[str, list[float]]:
        """``win_score_quantiles`` for the gateway's threshold strategy."""
        if self.win_scores.size == 0:
            return {}
        grid = np.linspace(0.0, 1.0, 101)
        return {"win_score_quantiles": [float(q) for q in np.quantile(self.win_scores, grid)]}


class IncomparableError(TrainerError):
    """A router cannot be scored on these rows (other candidates, or it needs query text)."""


def predict(router: Router, data: PreparedData) -> F64:
    """The router's expected quality of every candidate on the validation rows."""
    missing = sorted(set(data.models) - set(router.models))
    if missing:
        raise IncomparableError(f"it does not score candidate(s) {missing}")
    if router.needs_text and data.validation.texts is None:
        raise IncomparableError(
            f"it is a {router.kind} router, which reads query text, and these rows have none"
        )
    try:
        raw = router.predict(data.validation.embeddings, data.validation.texts)
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
    return Evaluation(label, metrics, quality, win[pair] if pair.any() else np.zeros(0))


def greedy_actions(predicted: F64, costs: F64, cost_weight: float) -> NDArray[np.int64]:
    """Per row, the candidate with the best predicted quality net of weighted cost; ties go to
    the cheaper candidate (by mean cost)."""
    mean_cost = costs.mean(0)
    scale = float(mean_cost.max()) or 1.0
    utility = predicted - cost_weight * costs / scale
    # Break exact ties by cost: the cheapest of the tied candidates wins.
    cheap_rank = np.argsort(np.argsort(mean_cost)).astype(np.float64)
    tie_break = -1e-9 * cheap_rank
    return np.asarray(np.argmax(utility + tie_break, axis=1), dtype=np.int64)


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
    return Evaluation("random", metrics, draws[0].quality, draws[0].win_scores)


def plot_curves(evaluations: Sequence[Evaluation], path: Path, *, title: str) -> Path:
    """Quality against strong-call % for each evaluation (RouteLLM's curve), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    try:
        for ev in evaluations:
            if ev.quality is None:
                continue
            pts = sorted(ev.quality.points, key=lambda p: (p.strong_pct, p.quality))
            apgr = ev.metrics.get("apgr", float("nan"))
            is_random = ev.label == "random"
            label = (
                f"random (one draw; mean APGR of {RANDOM_DRAWS}: {apgr:.3f})"
                if is_random
                else f"{ev.label} (APGR {apgr:.3f})"
            )
            ax.plot(
                [p.strong_pct for p in pts],
                [p.quality for p in pts],
                marker="o",
                markersize=3,
                linestyle="--" if is_random else "-",
                label=label,
            )
        ref = next((e.quality for e in evaluations if e.quality is not None), None)
        if ref is not None:
            ax.axhline(ref.strong_quality, color="grey", linewidth=0.8, linestyle=":")
            ax.axhline(ref.weak_quality, color="grey", linewidth=0.8, linestyle=":")
        else:
            ax.text(
                0.5,
                0.5,
                "no validation rows grade both the strong and the weak model:\n"
                "no quality curve (see the off-policy metrics)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.set_xlabel("strong-model calls (%)")
        ax.set_ylabel("mean quality")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ref is not None:
            ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
