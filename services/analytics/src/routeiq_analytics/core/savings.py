"""What routing saved: against always using one candidate model (each of them, the most
expensive, the best single one), against the strong model, and against a random strong/weak
mix that reaches the same quality.

For the requests in a window, with their token counts priced by the price table:

- ``C`` actual cost (each event's ``cost_usd``, else its tokens at the served model's price),
- ``A_x`` the same tokens at candidate ``x``'s price (always-``x``), for every priced candidate,
- ``S`` = ``A_strong`` (always-strong), ``W`` = ``A_weak`` (always-weak).

Savings vs always-``x`` are ``A_x - C`` (and ``(A_x - C) / A_x``); the two named baselines are
the **most expensive** candidate (the largest ``A_x``, so the largest saving) and the **best
single model**: the candidate with the highest observed mean quality (served and shadow
feedback) among those graded at least ``min_graded`` times in the window. The saving against
it is negative when routing costs more than always using it. Without a configured pair,
strong is the most expensive candidate and weak the cheapest.

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

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from routeiq.routing.datasets import ModelPrice

from routeiq_analytics.core.buckets import Mean


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


@dataclass(frozen=True)
class Counterfactuals:
    """One window's "always this model" costs and the strong/weak pair they are read with."""

    # Every priced candidate's cost for the window's tokens, the most expensive first.
    always_usd: dict[str, float]
    # Candidates and served models without a price: counted, but no baseline.
    unpriced: tuple[str, ...]
    strong: str | None
    weak: str | None
    strong_usd: float | None
    weak_usd: float | None
    pair_configured: bool

    @property
    def most_expensive(self) -> str | None:
        return next(iter(self.always_usd), None)

    def tied_with_most_expensive(self) -> list[str]:
        """Other candidates whose always-cost equals the most expensive one's."""
        top = self.most_expensive
        if top is None:
            return []
        high = self.always_usd[top]
        return [m for m, c in self.always_usd.items() if m != top and math.isclose(c, high)]


def _list_price(price: ModelPrice) -> float:
    return price.input_per_m + price.output_per_m


def counterfactuals(
    *,
    input_tokens: int,
    output_tokens: int,
    candidates: Iterable[str],
    served: Iterable[str] = (),
    prices: Mapping[str, ModelPrice],
    pair: tuple[str, str] | None,
) -> Counterfactuals:
    """Price the window's tokens at every priced candidate and settle the strong/weak pair.

    Candidates are ranked by what they would have cost for these tokens (the input/output mix
    decides between models priced differently per direction), then by list price so that an
    empty window still ranks, then by name so the ranking is deterministic. Without a
    configured ``pair``, strong is the first and weak the last (two models at least).
    ``served`` models are only checked for a price: unpriced ones are reported with the
    unpriced candidates.
    """
    names = set(candidates)
    cost = {n: prices[n].cost(input_tokens, output_tokens) for n in names if n in prices}
    unpriced = (names | set(served)) - prices.keys()
    ranked = sorted(cost, key=lambda n: (-cost[n], -_list_price(prices[n]), n))
    strong: str | None
    weak: str | None
    if pair is not None:
        strong, weak = pair
    elif len(ranked) >= 2:
        strong, weak = ranked[0], ranked[-1]
    else:
        strong = weak = None
    return Counterfactuals(
        always_usd={n: cost[n] for n in ranked},
        unpriced=tuple(sorted(unpriced)),
        strong=strong,
        weak=weak,
        strong_usd=None if strong is None else prices[strong].cost(input_tokens, output_tokens),
        weak_usd=None if weak is None else prices[weak].cost(input_tokens, output_tokens),
        pair_configured=pair is not None,
    )


@dataclass(frozen=True)
class BestSingleModel:
    """The candidate that always using would have given the best observed quality, or why none."""

    model: str | None
    quality: float | None
    graded: int | None
    cost_usd: float | None
    min_graded: int
    reason: str | None


def best_single_model(
    *, always_usd: Mapping[str, float], quality: Mapping[str, Mean], min_graded: int
) -> BestSingleModel:
    """The priced candidate with the highest mean quality over at least ``min_graded`` grades.

    ``quality`` holds each model's served and shadow grades. Equal quality goes to the cheaper
    model (what an operator picking one model would do), then to the name.
    """

    def graded(model: str) -> int:
        return quality[model].count if model in quality else 0

    if not always_usd:
        return BestSingleModel(None, None, None, None, min_graded, "no priced candidate model")
    eligible = [m for m in always_usd if graded(m) >= min_graded]
    if not eligible:
        most = max(always_usd, key=lambda m: (graded(m), m))
        detail = f"most: {most} with {graded(most)}" if graded(most) else "none graded"
        return BestSingleModel(
            None,
            None,
            None,
            None,
            min_graded,
            f"no candidate has {min_graded} graded answer{'' if min_graded == 1 else 's'} "
            f"in this window ({detail})",
        )

    def mean(model: str) -> float:
        value = quality[model].value
        assert value is not None  # graded at least min_graded >= 1 times
        return value

    best = min(eligible, key=lambda m: (-mean(m), always_usd[m], m))
    return BestSingleModel(best, mean(best), graded(best), always_usd[best], min_graded, None)
