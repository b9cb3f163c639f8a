"""Latency percentiles: exact (numpy's inverted_cdf) while samples fit, weighted beyond."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq_analytics.core.quantiles import Reservoir, weighted_quantiles

finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, min_size=1, max_size=200), st.floats(min_value=0, max_value=1))
def test_unit_weights_equal_numpys_inverted_cdf(values: list[float], q: float) -> None:
    [ours] = weighted_quantiles([(values, 1.0)], [q])
    assert ours == float(np.quantile(values, q, method="inverted_cdf"))


@given(st.lists(st.lists(finite, min_size=1, max_size=30), min_size=1, max_size=6))
def test_splitting_values_across_unit_weight_buckets_changes_nothing(
    parts: list[list[float]],
) -> None:
    flat = [v for part in parts for v in part]
    split = weighted_quantiles([(part, 1.0) for part in parts], [0.5, 0.95])
    assert split == weighted_quantiles([(flat, 1.0)], [0.5, 0.95])


def test_weights_count_each_kept_value_as_many_values() -> None:
    # 2 values standing for 50 each outweigh 10 values of weight 1.
    heavy = ([100.0, 200.0], 50.0)
    light = ([1.0] * 10, 1.0)
    assert weighted_quantiles([heavy, light], [0.05, 0.5, 0.95]) == [1.0, 100.0, 200.0]


def test_no_values_gives_none_and_bad_quantiles_are_refused() -> None:
    assert weighted_quantiles([([], 1.0)], [0.5, 0.95]) == [None, None]
    with pytest.raises(ValueError, match="outside"):
        weighted_quantiles([([1.0], 1.0)], [1.5])


def test_reservoir_is_exact_below_capacity_and_bounded_above() -> None:
    reservoir = Reservoir(8, rng=random.Random(1))
    for v in range(8):
        reservoir.add(float(v))
    assert reservoir.values == [float(v) for v in range(8)]
    assert reservoir.weight == 1.0
    for v in range(8, 10_000):
        reservoir.add(float(v))
    assert len(reservoir.values) == 8
    assert reservoir.seen == 10_000
    assert reservoir.weight == 10_000 / 8
    assert set(reservoir.values) <= {float(v) for v in range(10_000)}


def test_reservoir_sample_is_uniform_enough_for_percentiles() -> None:
    # 100k values 0..99999 through a 512-value sample: the median lands near 50k. The bound is
    # loose (about 6 standard errors) so the test cannot flake, yet catches a biased sample
    # (e.g. one that keeps only the first or last values).
    reservoir = Reservoir(512, rng=random.Random(7))
    for v in range(100_000):
        reservoir.add(float(v))
    [median] = weighted_quantiles([(reservoir.values, reservoir.weight)], [0.5])
    assert median is not None
    assert 36_000 < median < 64_000
