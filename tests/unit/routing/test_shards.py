"""The shard contract: deterministic keys and bytes, and rows → training data."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from routeiq.shards import SCHEMA, encode_table, shard_keys, to_table, training_data


def row(i: int, *, full: bool = False, propensity: float = 0.5) -> dict:
    emb = np.zeros(384, dtype=np.float32)
    emb[i % 384] = 1.0
    return {
        "decision_id": f"d{i}",
        "event_time": datetime(2026, 11, 23, 10, 0, i % 60, tzinfo=UTC),
        "window_start": datetime(2026, 11, 23, 10, tzinfo=UTC),
        "late": False,
        "embedding": emb.tolist(),
        "selected_model": "strong" if i % 2 else "weak",
        "propensity": propensity,
        "quality": 1.0,
        "quality_source": "feedback:replay",
        "reward": 1.0,
        "outcome_models": ["strong", "weak"] if full else None,
        "outcome_qualities": [1.0, 0.0] if full else None,
        "candidate_models": ["strong", "weak"],
        "feedback_count": 2 if full else 1,
    }


@given(st.integers(0, 2**41), st.integers(0, 63), st.booleans())
def test_keys_are_a_function_of_window_and_partition(start: int, part: int, late: bool) -> None:
    a = shard_keys(start, part, late=late)
    assert a == shard_keys(start, part, late=late)
    assert a[0].endswith(f"window={start}/part-{part}.parquet")
    assert ("/late/" in a[0]) == late


def test_the_same_rows_in_any_order_give_the_same_bytes() -> None:
    rows = [row(i) for i in range(20)]
    assert encode_table(to_table(rows)) == encode_table(to_table(list(reversed(rows))))
    assert to_table(rows).schema == SCHEMA


def test_training_data_weights_bandit_rows_and_keeps_full_information() -> None:
    rows = [row(0, propensity=0.25), row(1, full=True)]
    data = training_data(to_table(rows), models=["strong", "weak"])
    assert data.quality[0].tolist()[1] == 1.0
    assert np.isnan(data.quality[0, 0])
    assert data.weights is not None
    assert data.weights[0, 1] == 4.0  # 1 / propensity
    assert data.quality[1].tolist() == [1.0, 0.0]
    assert data.weights[1].tolist() == [1.0, 1.0]
    plain = training_data(to_table(rows), models=["strong", "weak"], propensity_correction="none")
    assert plain.weights is not None
    assert plain.weights[0, 1] == 1.0
