"""The JSON shape of one window: what ``GET /api/summary`` returns and the dashboard shows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from routeiq_analytics.core.buckets import Bucket, GroupStats, Mean, Window
from routeiq_analytics.core.durations import format_duration
from routeiq_analytics.core.quantiles import weighted_quantiles
from routeiq_analytics.core.savings import (
    Counterfactuals,
    RandomBaseline,
    best_single_model,
    random_at_equal_quality,
    saved,
)

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


def _random_baseline(totals: Bucket, cf: Counterfactuals) -> RandomBaseline:
    """The random strong/weak mix at the routed quality, or why there is none (no pair)."""
    if cf.strong is None or cf.weak is None or cf.strong_usd is None or cf.weak_usd is None:
        return RandomBaseline(
            None,
            None,
            totals.quality.value,
            None,
            None,
            None,
            "fewer than two priced candidate models in this window: no strong/weak pair",
        )
    return random_at_equal_quality(
        strong_cost_usd=cf.strong_usd,
        weak_cost_usd=cf.weak_usd,
        target_quality=totals.quality.value,
        strong_quality=totals.models.get(cf.strong, GroupStats()).all_quality.value,
        weak_quality=totals.models.get(cf.weak, GroupStats()).all_quality.value,
    )


def _notes(totals: Bucket, cf: Counterfactuals) -> list[str]:
    """What a reader of the savings should know: models left out, a pair that does not fit."""
    notes = []
    if cf.unpriced:
        notes.append(
            f"no price for {', '.join(cf.unpriced)}: counted (actual cost from each event's "
            "cost_usd, else $0) but no always-model baseline; add them to the price table"
        )
    # Only decisions that list their candidates say what the router could choose; a model
    # merely not served in a short window is no sign of a wrong pair.
    if cf.pair_configured and totals.candidates:
        seen = totals.candidates | totals.served()
        missing = [m for m in (cf.strong, cf.weak) if m not in seen]
        if missing:
            notes.append(
                f"the configured strong/weak pair ({cf.strong}, {cf.weak}): "
                f"{', '.join(str(m) for m in missing)} "
                f"{'is not a candidate' if len(missing) == 1 else 'are not candidates'} in "
                "this window; strong_model=auto and weak_model=auto use the most expensive "
                "and the cheapest candidate"
            )
    return notes


def savings_of(totals: Bucket, cf: Counterfactuals, *, min_graded: int) -> dict[str, Any]:
    """The ``savings`` block: the strong/weak pair's baselines and the N-model ones."""
    actual = totals.cost_usd
    baseline = _random_baseline(totals, cf)
    top = cf.most_expensive
    best = best_single_model(
        always_usd=cf.always_usd,
        quality={name: stats.all_quality for name, stats in totals.models.items()},
        min_graded=min_graded,
    )
    best_saved = saved(best.cost_usd, actual)
    return {
        "strong_model": cf.strong,
        "weak_model": cf.weak,
        "pair": "configured" if cf.pair_configured else "auto",
        "always_strong": saved(cf.strong_usd, actual),
        "always_weak_usd": cf.weak_usd,
        "random_equal_quality": {
            **saved(baseline.cost_usd, actual),
            "strong_share": baseline.strong_share,
            "target_quality": baseline.target_quality,
            "strong_quality": baseline.strong_quality,
            "weak_quality": baseline.weak_quality,
            "reachable": baseline.reachable,
            "reason": baseline.reason,
        },
        # Every priced candidate, most expensive first: "always X" for every X.
        "always_model_usd": dict(cf.always_usd),
        "always_most_expensive": {
            **saved(None if top is None else cf.always_usd[top], actual),
            "model": top,
            "tied": cf.tied_with_most_expensive(),
        },
        "best_single_model": {
            **best_saved,
            "model": best.model,
            "quality": best.quality,
            "graded": best.graded,
            "min_graded": best.min_graded,
            "routed_quality": totals.quality.value,
            "costs_more": None if best_saved["saved_usd"] is None else best_saved["saved_usd"] < 0,
            "reason": best.reason,
        },
        "unpriced_models": list(cf.unpriced),
        "notes": _notes(totals, cf),
    }


def summarize(
    window: Window,
    *,
    totals: Bucket,
    latency_sample_size: int,
    counterfactuals: Counterfactuals,
    min_graded: int,
    pipeline: Mapping[str, int],
) -> dict[str, Any]:
    """Everything one window shows, from its buckets and their merge ``totals``."""
    latency_samples, latency_observed = window.latency()
    n = totals.requests
    p50, p95 = weighted_quantiles(latency_samples, LATENCY_QUANTILES)
    kept = sum(len(values) for values, _ in latency_samples)
    by_model = dict(sorted(totals.models.items(), key=lambda item: (-item[1].requests, item[0])))
    return {
        "window": format_duration(window.window_s),
        "window_s": window.window_s,
        "from": iso(window.first),
        "to": iso(window.now),
        "bucket_s": window.bucket_s,
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
        "savings": savings_of(totals, counterfactuals, min_graded=min_graded),
        "routing_latency_ms": {
            "p50": p50,
            "p95": p95,
            "observed": latency_observed,
            "sampled": kept,
            "exact": kept == latency_observed,
            "method": (
                "inverse-CDF percentile over a uniform reservoir sample of at most "
                f"{latency_sample_size} values per {window.bucket_s}s bucket (exact while no "
                "bucket overflows)"
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
