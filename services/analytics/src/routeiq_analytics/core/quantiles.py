"""Routing-latency percentiles: exact over a bounded uniform sample per time bucket.

Each bucket keeps a reservoir (Vitter's algorithm R) of at most ``capacity`` values. While a
bucket has seen no more values than that, its sample *is* its data and percentiles over a
window are exact; above it, each kept value stands for ``seen / kept`` values and the window's
percentile is the weighted one. Memory is ``capacity`` floats per bucket whatever the traffic.

The percentile definition is the inverse of the empirical CDF (numpy's ``inverted_cdf``): the
smallest value whose cumulative weight reaches ``q`` of the total. It returns an observed
value, never an interpolation, so tests can state results exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import numpy as np


class Reservoir:
    """A uniform sample of at most ``capacity`` of the values added, and how many were added."""

    __slots__ = ("_rng", "capacity", "seen", "values")

    def __init__(self, capacity: int, *, rng: random.Random) -> None:
        if capacity < 1:
            raise ValueError("reservoir capacity must be at least 1")
        self.capacity = capacity
        self.seen = 0
        self.values: list[float] = []
        self._rng = rng

    def add(self, value: float) -> None:
        """Offer one value; it is kept with probability ``capacity / seen``."""
        self.seen += 1
        if len(self.values) < self.capacity:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.capacity:
            self.values[slot] = value

    @property
    def weight(self) -> float:
        """How many added values each kept value stands for (1.0 while exact)."""
        return self.seen / len(self.values) if self.values else 0.0


def weighted_quantiles(
    samples: Iterable[tuple[Sequence[float], float]], quantiles: Sequence[float]
) -> list[float | None]:
    """Inverse-CDF quantiles of weighted samples ``[(values, weight_of_each), ...]``.

    With every weight 1 this equals ``numpy.quantile(values, q, method="inverted_cdf")``.
    Returns ``None`` for each quantile when there are no values.
    """
    value_parts: list[np.ndarray] = []
    weight_parts: list[np.ndarray] = []
    for values, weight in samples:
        if len(values) and weight > 0:
            value_parts.append(np.asarray(values, dtype=np.float64))
            weight_parts.append(np.full(len(values), weight, dtype=np.float64))
    if not value_parts:
        return [None for _ in quantiles]
    values_all = np.concatenate(value_parts)
    weights_all = np.concatenate(weight_parts)
    order = np.argsort(values_all, kind="stable")
    sorted_values = values_all[order]
    cumulative = np.cumsum(weights_all[order])
    total = cumulative[-1]
    out: list[float | None] = []
    for q in quantiles:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} is outside [0, 1]")
        # A relative tolerance keeps q*total == cumulative[i] on the lower value despite
        # float rounding in the cumulative sum of non-integer weights.
        index = int(np.searchsorted(cumulative, q * total * (1 - 1e-12), side="left"))
        out.append(float(sorted_values[min(index, len(sorted_values) - 1)]))
    return out
