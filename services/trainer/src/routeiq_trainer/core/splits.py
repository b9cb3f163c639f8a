"""Splitting a request's examples by time, so no decision (nor any instant) is on both sides.

Pure functions of the event times, ids and embeddings: the loader (``routeiq_trainer.data``)
reads the rows, these decide which validate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from routeiq_trainer.errors import NoDataError

I64 = NDArray[np.int64]


def _query_key(embedding: NDArray[np.float32]) -> bytes:
    """Identity of a query without its text: its embedding, rounded against float noise."""
    return np.round(np.asarray(embedding, dtype=np.float64), 4).tobytes()


def novel_validation(
    embeddings: NDArray[np.float32], times: NDArray[np.int64], val_idx: I64, cut: int
) -> tuple[I64, int]:
    """The validation rows whose query never occurred before ``cut``, and how many were not."""
    seen = {_query_key(embeddings[i]) for i in np.flatnonzero(times < cut)}
    keep = np.array([i for i in val_idx if _query_key(embeddings[i]) not in seen], dtype=np.int64)
    return keep, len(val_idx) - len(keep)


def time_split(
    times: NDArray[np.int64], ids: Sequence[str], fraction: float
) -> tuple[I64, I64, int]:
    """(train rows, validation rows, boundary time): the newest ``fraction`` validates.

    Rows at the boundary time all validate, so train times are strictly before every
    validation time (if the boundary is the earliest instant, that instant trains instead).
    Ties in time are ordered by id, so the split is a function of the data.
    """
    n = len(times)
    if n < 2:
        raise NoDataError(f"{n} example(s): nothing to split")
    order = np.lexsort((np.asarray(ids, dtype=str), times))
    n_val = min(max(1, round(n * fraction)), n - 1)
    cut = int(times[order[n - n_val]])
    if not (times < cut).any():
        # The boundary fell inside the earliest instant: that instant trains instead.
        later = times[times > cut]
        if later.size == 0:
            raise NoDataError(
                "every example has the same event time, so no earlier examples are left to "
                "train on: a time split needs examples from more than one instant"
            )
        cut = int(later.min())
    train = np.sort(np.flatnonzero(times < cut)).astype(np.int64)
    val = np.sort(np.flatnonzero(times >= cut)).astype(np.int64)
    return train, val, cut
