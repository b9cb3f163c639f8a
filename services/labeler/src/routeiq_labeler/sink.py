"""Writing flush plans as Parquet shards (``routeiq.shards``) to S3, idempotently.

Every write is a merge with what the object already holds, keyed by decision id, then a full
rewrite under the deterministic key of (window, partition, late):

- a regular shard rewritten after a crash keeps every row it had, whatever subset of the
  window's buffer the recovered state still holds;
- a late shard accumulates late rows across flushes (the object is the accumulator, so late
  rows need not stay in state), minus decisions the window's regular shard already holds: a
  decision replayed after its window was written is not late, it is a replay.

When two rows share a decision id the one with more feedback wins, then the newer one, so a
label never gets worse by a rewrite. Rows are sorted by decision id before encoding, so
rewriting the same rows produces the same bytes.
"""

from __future__ import annotations

import io
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import urllib3
from routeiq.errors import ArtifactNotFoundError, StorageError
from routeiq.labeling import NO_LABEL, DecisionFacts, LabelPolicy, utc
from routeiq.shards import decode_table, shard_keys, write_shard
from routeiq.storage import ArtifactStore

from routeiq_labeler.core.state import FlushPlan, FlushResult

# What a failed S3 call raises: an unreachable endpoint surfaces from minio as urllib3's error,
# not as an S3Error.
S3_ERRORS = (StorageError, urllib3.exceptions.HTTPError)

# Regular shards' decision ids, kept to check late rows against (regular shards do not change
# once written, except by a crash-rewrite that keeps every id).
_ID_CACHE_SIZE = 256


def preload_arrow() -> None:
    """Convert one timezone-aware timestamp now: pyarrow imports pandas for that on first use
    (about two seconds), which would otherwise stall the first shard write, and with the GIL
    the stream, mid-traffic."""
    pa.array([utc(0)], type=pa.timestamp("ms", tz="UTC"))


class ShardSink:
    """Labels plans' rows and writes them with ``routeiq.shards.write_shard``."""

    def __init__(
        self,
        *,
        store: ArtifactStore,
        bucket: str,
        policy: LabelPolicy,
        clock_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._policy = policy
        self._clock_ms = clock_ms
        self._regular_ids: OrderedDict[tuple[int, int], frozenset[str]] = OrderedDict()

    @property
    def bucket(self) -> str:
        return self._bucket

    def write(self, plan: FlushPlan) -> FlushResult:
        """Label the plan's rows, merge them into the shard object and write it with its
        manifest. Blocking (S3): the worker runs it in a thread."""
        rows = {
            decision_id: self._policy.row(
                DecisionFacts.from_state(entry["d"]),
                feedback,
                window_start_ms=plan.window_start,
                late=plan.late,
            )
            for decision_id, entry, feedback in plan.entries
        }
        duplicates = 0
        if plan.late:
            written = self.regular_ids(plan.window_start, plan.partition)
            duplicates = sum(1 for d in rows if d in written)
            rows = {d: r for d, r in rows.items() if d not in written}
        if not rows:
            # Only replays of rows the regular shard holds: nothing to add anywhere.
            return FlushResult(manifest=None, added_rows=0, duplicates=duplicates)
        by_source = Counter(r["quality_source"] for r in rows.values())
        existing = self._read_rows(plan.window_start, plan.partition, late=plan.late)
        added = sum(1 for d in rows if d not in existing)
        # Training examples new to this object: labelled rows it did not hold, or held
        # unlabelled (feedback that arrived after a first write).
        labeled = sum(
            1
            for d, r in rows.items()
            if r["quality_source"] != NO_LABEL
            and (d not in existing or existing[d]["quality_source"] == NO_LABEL)
        )
        merged = dict(existing)
        for decision_id, row in rows.items():
            old = merged.get(decision_id)
            if old is None or (row["feedback_count"] or 0) >= (old["feedback_count"] or 0):
                merged[decision_id] = row
        manifest = write_shard(
            self._store,
            self._bucket,
            list(merged.values()),
            window_start_ms=plan.window_start,
            window_end_ms=plan.window_end,
            partition=plan.partition,
            late=plan.late,
            written_at_ms=self._clock_ms(),
        )
        if not plan.late:
            self._remember(plan.window_start, plan.partition, frozenset(merged))
        return FlushResult(
            manifest=manifest,
            added_rows=added,
            duplicates=duplicates,
            by_source=dict(by_source),
            labeled_rows=labeled,
        )

    def regular_ids(self, window_start: int, partition: int) -> frozenset[str]:
        """Decision ids in the window's regular shard (empty when it is not written yet)."""
        cached = self._regular_ids.get((window_start, partition))
        if cached is not None:
            self._regular_ids.move_to_end((window_start, partition))
            return cached
        ids = frozenset(
            self._read_column(window_start, partition, late=False, column="decision_id")
        )
        if ids:
            # Only a written shard is cached: an absent one may be written any moment.
            self._remember(window_start, partition, ids)
        return ids

    def _remember(self, window_start: int, partition: int, ids: frozenset[str]) -> None:
        self._regular_ids[(window_start, partition)] = ids
        self._regular_ids.move_to_end((window_start, partition))
        while len(self._regular_ids) > _ID_CACHE_SIZE:
            self._regular_ids.popitem(last=False)

    def _read_rows(self, window_start: int, partition: int, *, late: bool) -> dict[str, Any]:
        data = self._object(window_start, partition, late=late)
        if data is None:
            return {}
        return {r["decision_id"]: r for r in decode_table(data).to_pylist()}

    def _read_column(
        self, window_start: int, partition: int, *, late: bool, column: str
    ) -> list[Any]:
        data = self._object(window_start, partition, late=late)
        if data is None:
            return []
        return list(pq.read_table(io.BytesIO(data), columns=[column]).column(column).to_pylist())

    def _object(self, window_start: int, partition: int, *, late: bool) -> bytes | None:
        # The Parquet object itself, not its manifest: after a crash between the two writes
        # the object is newer than the manifest. get_bytes verifies the object's own sha256.
        key, _ = shard_keys(window_start, partition, late=late)
        try:
            return self._store.get_bytes(self._bucket, key)
        except ArtifactNotFoundError:
            return None
