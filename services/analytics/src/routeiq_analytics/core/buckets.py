"""Per-time-bucket aggregates: everything a window needs, nothing per event.

A bucket holds counters, sums and one bounded latency sample for the decisions whose event
time falls in ``[start, start + bucket_s)``. A window is the merge of its buckets, so memory is
bounded by the number of buckets kept (retention / bucket length) times the labels seen, never
by the number of events.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from routeiq.routing.datasets import ModelPrice

from routeiq_analytics.core.quantiles import Reservoir

SUCCESS = "SUCCESS"


@dataclass(slots=True)
class Mean:
    """A running mean as (sum, count), mergeable across buckets."""

    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def merge(self, other: Mean) -> None:
        self.total += other.total
        self.count += other.count

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass(slots=True)
class GroupStats:
    """Requests, successes, cost and served quality of one strategy, A/B arm or model."""

    requests: int = 0
    successes: int = 0
    cost_usd: float = 0.0
    # Feedback on the answer this group served.
    quality: Mean = field(default_factory=Mean)
    # Shadow feedback: another model's answer to a request this model did not serve. Only
    # kept for models (a strategy did not choose the shadow answer).
    shadow_quality: Mean = field(default_factory=Mean)

    def merge(self, other: GroupStats) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.cost_usd += other.cost_usd
        self.quality.merge(other.quality)
        self.shadow_quality.merge(other.shadow_quality)

    @property
    def all_quality(self) -> Mean:
        """Served and shadow scores together: how good this model's answers are."""
        merged = Mean(self.quality.total, self.quality.count)
        merged.merge(self.shadow_quality)
        return merged


@dataclass(slots=True)
class Bucket:
    """Aggregates of the decisions made in ``[start, start + bucket_s)`` (event time)."""

    start: int
    requests: int = 0
    successes: int = 0
    exploration: int = 0
    fallbacks: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    # Actual cost (the event's cost_usd, else tokens × the model's price).
    cost_usd: float = 0.0
    # Every request's tokens. A price is linear in tokens, so these two sums give what the
    # bucket would have cost on ANY priced model (``always``): one pair of integers instead of a
    # running cost per model, exact, and independent of how many models there are.
    input_tokens: int = 0
    output_tokens: int = 0
    unpriced: int = 0
    # Models the decisions listed as candidates (``candidate_deployments``). With the served
    # models, they are what "always X" baselines are computed for when none are configured.
    candidates: set[str] = field(default_factory=set)
    # Served feedback over all requests (the routed traffic's quality).
    quality: Mean = field(default_factory=Mean)
    models: dict[str, GroupStats] = field(default_factory=dict)
    strategies: dict[str, GroupStats] = field(default_factory=dict)
    arms: dict[str, GroupStats] = field(default_factory=dict)
    latency: Reservoir | None = None

    @classmethod
    def new(cls, start: int, *, latency_capacity: int, rng: random.Random) -> Bucket:
        return cls(start=start, latency=Reservoir(latency_capacity, rng=rng))

    def merge(self, other: Bucket) -> None:
        """Add ``other``'s counters into this one (latency samples are merged by the caller)."""
        self.requests += other.requests
        self.successes += other.successes
        self.exploration += other.exploration
        self.fallbacks += other.fallbacks
        self.statuses.update(other.statuses)
        self.cost_usd += other.cost_usd
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.unpriced += other.unpriced
        self.candidates |= other.candidates
        self.quality.merge(other.quality)
        for mine, theirs in (
            (self.models, other.models),
            (self.strategies, other.strategies),
            (self.arms, other.arms),
        ):
            for name, stats in theirs.items():
                mine.setdefault(name, GroupStats()).merge(stats)

    def served(self) -> set[str]:
        """Models that served a request here (``models`` also holds shadow-graded ones)."""
        return {name for name, stats in self.models.items() if stats.requests}

    def always(self, price: ModelPrice) -> float:
        """What this bucket's requests would have cost had one model at ``price`` served all."""
        return price.cost(self.input_tokens, self.output_tokens)


# One bucket's latency sample: kept values and the weight each stands for.
LatencySample = tuple[Sequence[float], float]


@dataclass(frozen=True)
class Window:
    """The buckets one read covers, taken under the aggregator's lock, and where they sit."""

    window_s: int
    bucket_s: int
    now: float
    # Start of the window's first bucket, and of the bucket that holds ``now``.
    first: int
    current: int
    # Oldest first.
    buckets: Sequence[Bucket]

    def totals(self, start: int | None = None) -> Bucket:
        """Every bucket merged into one (latency samples stay apart: see ``latency``)."""
        merged = Bucket(start=self.first if start is None else start)
        for bucket in self.buckets:
            merged.merge(bucket)
        return merged

    def latency(self) -> tuple[list[LatencySample], int]:
        """Each bucket's latency sample, and how many latencies were observed in all."""
        samples: list[LatencySample] = []
        observed = 0
        for bucket in self.buckets:
            if bucket.latency is not None:
                samples.append((bucket.latency.values, bucket.latency.weight))
                observed += bucket.latency.seen
        return samples, observed
