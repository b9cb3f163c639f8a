"""A window as column-oriented series over equal steps: what ``GET /api/timeseries`` returns
and the dashboard's charts draw."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from routeiq.routing.datasets import ModelPrice

from routeiq_analytics.core.buckets import Bucket, LatencySample, Window
from routeiq_analytics.core.quantiles import weighted_quantiles
from routeiq_analytics.core.savings import Counterfactuals
from routeiq_analytics.core.summary import LATENCY_QUANTILES, iso, share

TIMESERIES_METRICS = (
    "requests_by_model",
    "cost_usd",
    "always_strong_usd",
    "always_weak_usd",
    "always_model_usd",
    "success_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "quality",
    "exploration_share",
)


def _always(
    steps: Sequence[Bucket], model: str | None, prices: Mapping[str, ModelPrice]
) -> list[float | None]:
    """Each step's tokens at ``model``'s price (gaps without a model)."""
    if model is None:
        return [None] * len(steps)
    return [step.always(prices[model]) for step in steps]


def timeseries(
    window: Window,
    points: int,
    *,
    counterfactuals: Callable[[Bucket], Counterfactuals],
    prices: Mapping[str, ModelPrice],
) -> dict[str, Any]:
    """``window``'s buckets merged into at most ``points`` equal steps, one list per metric.

    ``counterfactuals`` prices the whole window's totals: the pair and the candidates are the
    window's, so every step's always-strong is the same model.
    """
    n_buckets = math.ceil(window.window_s / window.bucket_s)
    per_step = max(1, math.ceil(n_buckets / points))
    step_s = per_step * window.bucket_s
    steps = math.ceil(n_buckets / per_step)
    origin = window.current + window.bucket_s - steps * step_s
    merged = [Bucket(start=origin + i * step_s) for i in range(steps)]
    samples: list[list[LatencySample]] = [[] for _ in range(steps)]
    for bucket in window.buckets:
        i = (bucket.start - origin) // step_s
        merged[i].merge(bucket)
        if bucket.latency is not None:
            samples[i].append((bucket.latency.values, bucket.latency.weight))
    models = sorted({m for b in merged for m in b.models})
    latency = [weighted_quantiles(s, LATENCY_QUANTILES) for s in samples]
    cf = counterfactuals(window.totals(origin))
    return {
        "window_s": window.window_s,
        "from": iso(max(origin, window.first)),
        "to": iso(window.now),
        "step_s": step_s,
        "t": [b.start for b in merged],
        "requests_by_model": {
            m: [b.models[m].requests if m in b.models else 0 for b in merged] for m in models
        },
        "cost_usd": [b.cost_usd for b in merged],
        "always_strong_usd": _always(merged, cf.strong, prices),
        "always_weak_usd": _always(merged, cf.weak, prices),
        "always_model_usd": {m: _always(merged, m, prices) for m in cf.always_usd},
        "success_rate": [share(b.successes, b.requests) for b in merged],
        "latency_p50_ms": [p[0] for p in latency],
        "latency_p95_ms": [p[1] for p in latency],
        "quality": [b.quality.value for b in merged],
        "exploration_share": [share(b.exploration, b.requests) for b in merged],
    }
