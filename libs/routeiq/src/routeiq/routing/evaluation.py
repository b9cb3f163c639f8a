"""Router-quality metrics as RouteLLM defines them, plus off-policy estimates from logged data.

RouteLLM (``routellm/evals/evaluate.py`` and ``benchmarks.py``) sweeps a strong-call threshold
over the 10-quantile edges of a router's scores: at every edge but the last a query goes to the
strong model when ``score >= edge``; at the last edge when ``score > edge`` (so the sweep ends at
0 % strong calls). Each edge gives a point (strong-call %, mean quality). Then

* AUC  = trapezoid area under quality over strong-call fraction (points sorted by strong %);
* APGR = (AUC − weak AUC) / (strong AUC − weak AUC), weak/strong AUC being the constant
  qualities of always-weak / always-strong over the same x range;
* CPT(x%) = the strong-call % at which quality first reaches weak + x·(strong − weak), by
  linear interpolation between the sweep's points.

Ties: quantile edges of tied scores coincide and give repeated points, which add zero area;
``pandas.qcut`` would refuse them, we keep them. CPT walks the curve in strong-% order and
takes the first crossing, which equals RouteLLM's ``np.interp`` whenever quality rises
monotonically with strong calls (the only case where ``np.interp`` is well defined).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SweepPoint:
    """One threshold of the sweep."""

    threshold: float
    strong_pct: float  # 0..100
    quality: float  # mean quality of the routed answers


@dataclass(frozen=True)
class RouterQuality:
    """RouteLLM's metrics for one router on one labelled set."""

    apgr: float
    cpt50: float
    cpt80: float
    auc: float
    strong_quality: float
    weak_quality: float
    points: tuple[SweepPoint, ...] = field(repr=False)

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}apgr": self.apgr,
            f"{prefix}cpt50": self.cpt50,
            f"{prefix}cpt80": self.cpt80,
            f"{prefix}auc": self.auc,
        }


def sweep(
    scores: ArrayLike, strong: ArrayLike, weak: ArrayLike, *, num_results: int = 10
) -> list[SweepPoint]:
    """Quality at each quantile-edge threshold of ``scores`` (RouteLLM's evaluate loop)."""
    s = np.asarray(scores, dtype=np.float64)
    qs = np.asarray(strong, dtype=np.float64)
    qw = np.asarray(weak, dtype=np.float64)
    if not (s.shape == qs.shape == qw.shape) or s.ndim != 1 or s.size == 0:
        raise ValueError("scores, strong and weak must be equal-length, non-empty 1-d arrays")
    # pandas.qcut's edges are the linear-interpolated quantiles at 0, 1/n, ..., 1.
    edges = np.quantile(s, np.linspace(0.0, 1.0, num_results + 1))
    points = []
    for i, edge in enumerate(edges):
        pick_strong = s >= edge if i != len(edges) - 1 else s > edge
        quality = float(np.where(pick_strong, qs, qw).mean())
        points.append(SweepPoint(float(edge), float(pick_strong.mean() * 100.0), quality))
    return points


def _auc(points: Sequence[SweepPoint]) -> tuple[float, FloatArray]:
    ordered = sorted(points, key=lambda p: (p.strong_pct, p.quality))
    x = np.array([p.strong_pct / 100.0 for p in ordered])
    y = np.array([p.quality for p in ordered])
    return float(np.trapezoid(y, x)), x


def cpt(points: Sequence[SweepPoint], target_quality: float) -> float:
    """Smallest strong-call % at which the curve reaches ``target_quality`` (interpolated)."""
    ordered = sorted(points, key=lambda p: (p.strong_pct, p.quality))
    if ordered[0].quality >= target_quality:
        return ordered[0].strong_pct
    for a, b in itertools.pairwise(ordered):
        if b.quality >= target_quality > a.quality:
            if b.quality == a.quality:
                return b.strong_pct
            frac = (target_quality - a.quality) / (b.quality - a.quality)
            return a.strong_pct + frac * (b.strong_pct - a.strong_pct)
    return 100.0


def router_quality(
    scores: ArrayLike, strong: ArrayLike, weak: ArrayLike, *, num_results: int = 10
) -> RouterQuality:
    """APGR, CPT(50%), CPT(80%) and AUC of a router whose higher score means "use strong"."""
    points = sweep(scores, strong, weak, num_results=num_results)
    strong_q = float(np.mean(np.asarray(strong, dtype=np.float64)))
    weak_q = float(np.mean(np.asarray(weak, dtype=np.float64)))
    auc, x = _auc(points)
    span = float(x.max() - x.min())
    weak_auc, strong_auc = weak_q * span, strong_q * span
    denom = strong_auc - weak_auc
    apgr = (auc - weak_auc) / denom if denom != 0 else float("nan")
    gap = strong_q - weak_q
    return RouterQuality(
        apgr=float(apgr),
        cpt50=cpt(points, weak_q + 0.5 * gap),
        cpt80=cpt(points, weak_q + 0.8 * gap),
        auc=auc,
        strong_quality=strong_q,
        weak_quality=weak_q,
        points=tuple(points),
    )


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_quality(
    scores: ArrayLike,
    strong: ArrayLike,
    weak: ArrayLike,
    *,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """APGR, CPT(50%), CPT(80%) with percentile-bootstrap CIs over queries (resampled rows)."""
    s = np.asarray(scores, dtype=np.float64)
    qs = np.asarray(strong, dtype=np.float64)
    qw = np.asarray(weak, dtype=np.float64)
    point = router_quality(s, qs, qw)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"apgr": [], "cpt50": [], "cpt80": []}
    for _ in range(samples):
        idx = rng.integers(0, s.size, s.size)
        if np.mean(qs[idx]) == np.mean(qw[idx]):
            continue  # APGR is undefined when strong and weak tie on the resample
        q = router_quality(s[idx], qs[idx], qw[idx])
        draws["apgr"].append(q.apgr)
        draws["cpt50"].append(q.cpt50)
        draws["cpt80"].append(q.cpt80)
    tail = (1.0 - confidence) / 2.0 * 100.0
    out = {}
    for name, values in draws.items():
        lo, hi = np.percentile(values, [tail, 100.0 - tail]) if values else (np.nan, np.nan)
        out[name] = Interval(float(getattr(point, name)), float(lo), float(hi))
    return out


def best_model_accuracy(predicted: ArrayLike, actual: ArrayLike) -> float:
    """Share of queries where the router's top model is one of the truly best models."""
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    picked = np.nanargmax(p, axis=1)
    best = np.nanmax(a, axis=1)
    return float(np.mean(a[np.arange(len(a)), picked] >= best - 1e-12))


@dataclass(frozen=True)
class OffPolicyEstimate:
    """Value of a target policy estimated from data logged under another one."""

    ips: float
    snips: float
    logged: float  # mean reward of what was actually served
    matched: int  # rows where the target picks the logged action
    rows: int


def off_policy_value(
    target_actions: ArrayLike,
    logged_actions: ArrayLike,
    rewards: ArrayLike,
    propensities: ArrayLike,
    *,
    clip: float = 100.0,
) -> OffPolicyEstimate:
    """IPS and self-normalised IPS of a deterministic target policy from logged bandit data.

    ``propensities`` are the logging policy's probabilities of the logged actions (as the
    gateway records them); weights are clipped at ``clip`` to bound the variance.
    """
    t = np.asarray(target_actions)
    a = np.asarray(logged_actions)
    r = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(propensities, dtype=np.float64)
    if not (t.shape == a.shape == r.shape == p.shape):
        raise ValueError("all inputs must have the same shape")
    if np.any(p <= 0):
        raise ValueError("propensities must be positive")
    w = np.minimum((t == a) / p, clip)
    n = len(r)
    ips = float(np.sum(w * r) / n) if n else float("nan")
    snips = float(np.sum(w * r) / np.sum(w)) if np.sum(w) > 0 else float("nan")
    return OffPolicyEstimate(
        ips, snips, float(r.mean()) if n else float("nan"), int(np.sum(t == a)), n
    )
