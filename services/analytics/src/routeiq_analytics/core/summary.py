"""The JSON shape of one window: what ``GET /api/summary`` returns and the dashboard shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from routeiq_analytics.core.buckets import Bucket, GroupStats, Mean
from routeiq_analytics.core.durations import format_duration
from routeiq_analytics.core.quantiles import weighted_quantiles
from routeiq_analytics.core.savings import random_at_equal_quality, saved

LATENCY_QUANTILES = (0.5, 0.95)


def iso(epoch_s: float) -> str:
    """Epoch seconds → ISO 8601 UTC with milliseconds and a ``Z``."""
    return (
        datetime.fromtimestamp(epoch_s, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _quality(mean: Mean) -> dict[str, Any]:
    return {"mean": mean.value, "count": mean.count}


def _group(stats: GroupStats) -> dict[str, Any]:
    return {
        "requests": stats.requests,
        "success_rate": share(stats.successes, stats.requests),
        "cost_usd": stats.cost_usd,
        "cost_per_1k_requests_usd": stats.cost_usd / stats.requests * 1000.0
        if stats.requests
        else None,
        "quality": _quality(stats.quality),
    }


def _model(stats: GroupStats, total_requests: int) -> dict[str, Any]:
    out = _group(stats)
    out["share"] = share(stats.requests, total_requests)
    # A model's quality counts served and shadow feedback: both grade that model's answers.
    out["quality"] = {
        **_quality(stats.all_quality),
        "served_count": stats.quality.count,
        "shadow_count": stats.shadow_quality.count,
    }
    return out


def summarize(
    *,
    totals: Bucket,
    latency_samples: Sequence[tuple[Sequence[float], float]],
    latency_observed: int,
    window_s: int,
    window_from: float,
    now: float,
    bucket_s: int,
    latency_sample_size: int,
    strong_model: str,
    weak_model: str,
    pipeline: Mapping[str, int],
) -> dict[str, Any]:
    """Everything one window shows, from its merged buckets."""
    n = totals.requests
    strong = totals.models.get(strong_model, GroupStats())
    weak = totals.models.get(weak_model, GroupStats())
    baseline = random_at_equal_quality(
        strong_cost_usd=totals.strong_cost_usd,
        weak_cost_usd=totals.weak_cost_usd,
        target_quality=totals.quality.value,
        strong_quality=strong.all_quality.value,
        weak_quality=weak.all_quality.value,
    )
    p50, p95 = weighted_quantiles(latency_samples, LATENCY_QUANTILES)
    kept = sum(len(values) for values, _ in latency_samples)
    by_model = dict(sorted(totals.models.items(), key=lambda item: (-item[1].requests, item[0])))
    return {
        "window": format_duration(window_s),
        "window_s": window_s,
        "from": iso(window_from),
        "to": iso(now),
        "bucket_s": bucket_s,
        "requests": {
            "total": n,
            "by_model": {name: stats.requests for name, stats in by_model.items()},
            "by_status": dict(sorted(totals.statuses.items())),
        },
        "model_mix": {name: share(stats.requests, n) for name, stats in by_model.items()},
        "success_rate": share(totals.successes, n),
        "exploration_share": share(totals.exploration, n),
        "fallback_share": share(totals.fallbacks, n),
        "cost": {
            "total_usd": totals.cost_usd,
            "per_1k_requests_usd": totals.cost_usd / n * 1000.0 if n else None,
            "by_model": {name: stats.cost_usd for name, stats in by_model.items()},
            "unpriced_requests": totals.unpriced,
        },
        "savings": {
            "strong_model": strong_model,
            "weak_model": weak_model,
            "always_strong": saved(totals.strong_cost_usd, totals.cost_usd),
            "always_weak_usd": totals.weak_cost_usd,
            "random_equal_quality": {
                **saved(baseline.cost_usd, totals.cost_usd),
                "strong_share": baseline.strong_share,
                "target_quality": baseline.target_quality,
                "strong_quality": baseline.strong_quality,
                "weak_quality": baseline.weak_quality,
                "reachable": baseline.reachable,
                "reason": baseline.reason,
            },
        },
        "routing_latency_ms": {
            "p50": p50,
            "p95": p95,
            "observed": latency_observed,
            "sampled": kept,
            "exact": kept == latency_observed,
            "method": (
                "inverse-CDF percentile over a uniform reservoir sample of at most "
                f"{latency_sample_size} values per {bucket_s}s bucket (exact while no bucket "
                "overflows)"
            ),
        },
        "quality": {
            "overall": _quality(totals.quality),
            "by_strategy": {k: _group(v) for k, v in sorted(totals.strategies.items())},
            "by_arm": {k: _group(v) for k, v in sorted(totals.arms.items())},
            "by_model": {k: _model(v, n)["quality"] for k, v in by_model.items()},
        },
        "models": {name: _model(stats, n) for name, stats in by_model.items()},
        "pipeline": dict(pipeline),
    }
