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


# ---------------------------------------------------------------- N candidates


@dataclass(frozen=True)
class CostPoint:
    """The cost-aware policy at one λ: mean cost (USD per request) and mean quality."""

    lam: float
    cost: float
    quality: float


@dataclass(frozen=True)
class BudgetPoint:
    """The policy calibrated (without labels) to spend at most ``budget`` per request."""

    fraction: float  # of the best single model's mean cost
    budget: float
    lam: float
    cost: float
    quality: float


@dataclass(frozen=True)
class MultiModelQuality:
    """A router over N candidates on a fully graded set: the quality-cost curve and its
    baselines (RouterBench's framing; APGR and CPT stay for strong/weak pairs).

    * ``aiq``: area under the non-decreasing convex hull of the curve over the cost range
      from the cheapest to the most expensive single model, divided by that range;
    * ``at_budget``: quality when λ is calibrated on these rows' predictions and prices (no
      labels) to spend at most a fraction of the best single model's cost;
    * ``best_single``: the candidate with the highest mean quality on these rows (a hindsight
      baseline, as benchmarks report it); ``oracle``: each query's best candidate, cheapest
      among ties.
    """

    aiq: float
    oracle_aiq: float
    points: tuple[CostPoint, ...] = field(repr=False)
    at_budget: tuple[BudgetPoint, ...]
    singles: dict[str, tuple[float, float]]  # model -> (mean cost, mean quality)
    best_single: str
    oracle_quality: float
    oracle_cost: float
    max_quality: float  # the curve's best quality (λ = 0)
    max_quality_cost: float

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        best_cost, best_quality = self.singles[self.best_single]
        out = {
            f"{prefix}aiq": self.aiq,
            f"{prefix}oracle_aiq": self.oracle_aiq,
            f"{prefix}best_single_quality": best_quality,
            f"{prefix}best_single_cost_usd": best_cost,
            f"{prefix}oracle_quality": self.oracle_quality,
            f"{prefix}oracle_cost_usd": self.oracle_cost,
            f"{prefix}max_quality": self.max_quality,
            f"{prefix}max_quality_cost_usd": self.max_quality_cost,
        }
        for b in self.at_budget:
            pct = round(b.fraction * 100)
            out[f"{prefix}quality_at_{pct}pct_cost"] = b.quality
            out[f"{prefix}cost_at_{pct}pct_cost_usd"] = b.cost
        return out


# λ values swept for the curve: 0, then log-spaced (relative to the cost scale).
LAMBDAS: tuple[float, ...] = (0.0, *np.geomspace(1e-4, 1e3, 71).tolist())


def cost_quality_curve(
    predicted: ArrayLike,
    quality: ArrayLike,
    costs: ArrayLike,
    *,
    scale: float | None = None,
    lambdas: Sequence[float] = LAMBDAS,
) -> list[CostPoint]:
    """(cost, quality) of the cost-aware policy at each λ (see ``costpolicy``)."""
    from routeiq.routing.costpolicy import choose, cost_scale

    p = np.asarray(predicted, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if not (p.shape == q.shape == c.shape) or p.ndim != 2 or p.shape[0] == 0:
        raise ValueError("predicted, quality and costs must be equal-shape, non-empty (n, m)")
    s = cost_scale(c) if scale is None else scale
    rows = np.arange(p.shape[0])
    points = []
    for lam in lambdas:
        a = choose(p, c, float(lam), s)
        points.append(CostPoint(float(lam), float(c[rows, a].mean()), float(q[rows, a].mean())))
    return points


def hull_area(points: Sequence[tuple[float, float]], low: float, high: float) -> float:
    """Mean over cost ∈ [low, high] of the non-decreasing upper convex hull of (cost, quality)
    points (RouterBench's AIQ integrand); flat beyond the points at either end."""
    if high <= low:
        return float("nan")
    pts = sorted(set(points))
    hull: list[tuple[float, float]] = []
    for p in pts:  # Andrew's monotone chain, upper half
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    # Non-decreasing: once the hull peaks, more spending buys nothing more.
    peak = int(np.argmax([y for _, y in hull]))
    hull = hull[: peak + 1]
    xs = np.array([x for x, _ in hull])
    ys = np.array([y for _, y in hull])
    grid = np.linspace(low, high, 2001)
    values = np.interp(grid, xs, ys, left=ys[0], right=ys[-1])
    return float(np.trapezoid(values, grid) / (high - low))


def multi_model_quality(
    predicted: ArrayLike,
    quality: ArrayLike,
    costs: ArrayLike,
    models: Sequence[str],
    *,
    budgets: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    scale: float | None = None,
) -> MultiModelQuality:
    """The N-candidate metrics of a router's predictions on fully graded rows."""
    from routeiq.routing.costpolicy import Target, calibrate, choose, cost_scale

    p = np.asarray(predicted, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if not np.isfinite(q).all():
        raise ValueError("multi-model metrics need every candidate graded on every row")
    s = cost_scale(c) if scale is None else scale
    points = cost_quality_curve(p, q, c, scale=s)
    singles = {m: (float(c[:, j].mean()), float(q[:, j].mean())) for j, m in enumerate(models)}
    best = max(singles, key=lambda m: (singles[m][1], -singles[m][0], m))
    low = min(cost for cost, _ in singles.values())
    high = max(cost for cost, _ in singles.values())
    rows = np.arange(len(q))
    # Oracle: the best candidate per query, cheapest among ties (a tiny cost penalty).
    oracle = choose(q, c, 1e-9, s)
    oracle_points = cost_quality_curve(q, q, c, scale=s)
    best_cost = singles[best][0]
    at_budget = []
    for fraction in budgets:
        budget = fraction * best_cost
        lam = calibrate(p, c, Target("cost_per_1k_usd", budget * 1000.0), scale=s)
        a = choose(p, c, lam, s)
        at_budget.append(
            BudgetPoint(
                float(fraction),
                float(budget),
                float(lam),
                float(c[rows, a].mean()),
                float(q[rows, a].mean()),
            )
        )
    return MultiModelQuality(
        aiq=hull_area([(pt.cost, pt.quality) for pt in points], low, high),
        oracle_aiq=hull_area([(pt.cost, pt.quality) for pt in oracle_points], low, high),
        points=tuple(points),
        at_budget=tuple(at_budget),
        singles=singles,
        best_single=best,
        oracle_quality=float(q[rows, oracle].mean()),
        oracle_cost=float(c[rows, oracle].mean()),
        max_quality=points[0].quality,
        max_quality_cost=points[0].cost,
    )
