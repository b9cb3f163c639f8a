"""Validation rows are queries the router never saw: repeats of older queries are dropped."""

from __future__ import annotations

import numpy as np
from routeiq_trainer.core.splits import novel_validation, time_split


def test_repeated_queries_never_validate() -> None:
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(6, 384)).astype(np.float32)
    # Ten rows over time: queries 0-3 early; later, 0 and 2 again plus new queries 4 and 5.
    which = [0, 1, 2, 3, 1, 0, 4, 2, 5, 4]
    emb = queries[which]
    times = np.arange(10, dtype=np.int64)
    train, val, cut = time_split(times, [f"d{i}" for i in range(10)], 0.4)
    assert list(val) == [6, 7, 8, 9]
    kept, dropped = novel_validation(emb, times, val, cut)
    assert list(kept) == [6, 8, 9]  # row 7 repeats query 2, seen at time 2
    assert dropped == 1
    # A query repeated only inside the validation window is still novel to the router.
    assert which[9] == which[6]
    assert 9 in kept
    assert set(train).isdisjoint(kept)
