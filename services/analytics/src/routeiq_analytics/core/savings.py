"""What routing saved: against sending everything to the strong model, and against a random
strong/weak mix that reaches the same quality.

For the N requests in a window, with their token counts priced by the price table:

- ``C`` actual cost (each event's ``cost_usd``, else its tokens at the served model's price),
- ``S`` the same tokens at the strong model's price (always-strong),
- ``W`` the same tokens at the weak model's price (always-weak).

Savings vs always-strong are ``S - C`` (and ``(S - C) / S``). A random router that sends a
share ``p`` of requests to the strong model has expected quality ``p·q_s + (1 - p)·q_w`` and
expected cost ``p·S + (1 - p)·W``, where ``q_s`` and ``q_w`` are the models' observed mean
quality (served and shadow feedback). The share that matches the routed traffic's observed
quality ``q`` is ``p* = (q - q_w) / (q_s - q_w)``, clamped to [0, 1]; savings vs random at
equal quality are ``R - C`` with ``R = p*·S + (1 - p*)·W``. When ``q`` is above what any mix
reaches (``q > max(q_s, q_w)``), ``p*`` is the best mix's and ``reachable`` is false. This is
RouteLLM's random-router baseline (the straight line between the two models on the
cost/quality plane), evaluated at the router's own quality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RandomBaseline:
    """The cheapest random strong/weak mix that matches the observed quality, or why not."""

    cost_usd: float | None
    strong_share: float | None
    target_quality: float | None
    strong_quality: float | None
    weak_quality: float | None
    reachable: bool | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_at_equal_quality(
    *,
    strong_cost_usd: float,
    weak_cost_usd: float,
    target_quality: float | None,
    strong_quality: float | None,
    weak_quality: float | None,
) -> RandomBaseline:
    """``R = p*·S + (1 - p*)·W`` with ``p*`` the strong share whose quality equals the target."""
    missing = [
        name
        for name, value in (
            ("feedback on served answers", target_quality),
            ("feedback on the strong model", strong_quality),
            ("feedback on the weak model", weak_quality),
        )
        if value is None
    ]
    if missing or target_quality is None or strong_quality is None or weak_quality is None:
        return RandomBaseline(
            None,
            None,
            target_quality,
            strong_quality,
            weak_quality,
            None,
            f"no {', '.join(missing)} in this window",
        )
    if strong_quality > weak_quality:
        share = (target_quality - weak_quality) / (strong_quality - weak_quality)
        reachable = share <= 1.0
        share = min(max(share, 0.0), 1.0)
    else:
        # The weak model is at least as good: the cheapest mix of any quality it reaches is
        # all-weak.
        share = 0.0
        reachable = target_quality <= weak_quality
    cost = share * strong_cost_usd + (1.0 - share) * weak_cost_usd
    return RandomBaseline(
        cost, share, target_quality, strong_quality, weak_quality, reachable, None
    )


def saved(baseline_usd: float | None, actual_usd: float) -> dict[str, float | None]:
    """``{"baseline_usd", "saved_usd", "saved_pct"}``; the share is None for a zero baseline."""
    if baseline_usd is None:
        return {"baseline_usd": None, "saved_usd": None, "saved_pct": None}
    difference = baseline_usd - actual_usd
    return {
        "baseline_usd": baseline_usd,
        "saved_usd": difference,
        "saved_pct": difference / baseline_usd * 100.0 if baseline_usd > 0 else None,
    }
