"""The registry's storage: an ordered, durable log of (key, value) records.

The registry never changes its state directly: a write appends records, then reads the log up
to the offset it was given and applies what it reads. Replaying the same log therefore always
rebuilds the same state, whether the log lives in Kafka (``KafkaSchemaLog``) or in memory
(``InMemorySchemaLog``, for tests and tools).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from routeiq_schema_registry.core.records import LogRecord


@dataclass(frozen=True)
class LogBatch:
    """Records read from the log, and the offset the next read should start from.

    ``next_offset`` may be past the last record's offset + 1 when the log has gaps (records
    removed by compaction): it is where the reader knows the log continues.
    """

    records: list[LogRecord]
    next_offset: int


class SchemaLog(ABC):
    """An append-only log with offsets, as a single-partition compacted Kafka topic is."""

    def prepare(self, timeout_s: float) -> None:  # noqa: B027 (optional hook)
        """Make the log usable (create the topic, connect); called once before anything else."""

    @abstractmethod
    def append(self, key: bytes, value: bytes | None, *, timeout_s: float) -> int:
        """Write one record (``value`` None: a tombstone); return its offset once durable."""

    @abstractmethod
    def end_offset(self, *, timeout_s: float) -> int:
        """The offset the next appended record will get (everything before it is readable)."""

    @abstractmethod
    def read(self, from_offset: int, *, timeout_s: float) -> LogBatch:
        """Records at ``from_offset`` and after, waiting up to ``timeout_s`` for at least one."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release clients; the log's contents stay."""


class InMemorySchemaLog(SchemaLog):
    """A log in a list: same contract as Kafka's, no network. Thread-safe.

    ``compacted()`` gives what Kafka's log compaction would leave, so tests can check that a
    compacted log rebuilds the same registry.
    """

    def __init__(self, records: Iterable[tuple[bytes, bytes | None]] = ()) -> None:
        self._records: list[LogRecord] = []
        # Like Kafka's log end offset: it never goes back, even when compaction removes the
        # last records.
        self._end = 0
        self._changed = threading.Condition()
        for key, value in records:
            self.append(key, value)

    def append(self, key: bytes, value: bytes | None, *, timeout_s: float = 0.0) -> int:
        with self._changed:
            offset = self._end
            self._records.append(LogRecord(offset, key, value))
            self._end += 1
            self._changed.notify_all()
            return offset

    def end_offset(self, *, timeout_s: float = 0.0) -> int:
        with self._changed:
            return self._end

    def read(self, from_offset: int, *, timeout_s: float = 0.0) -> LogBatch:
        with self._changed:
            self._changed.wait_for(lambda: self._end > from_offset, timeout=timeout_s)
            records = [r for r in self._records if r.offset >= from_offset]
            return LogBatch(records, max(from_offset, self._end))

    def records(self) -> list[LogRecord]:
        """Every record, oldest first (a copy)."""
        with self._changed:
            return list(self._records)

    def compacted(self, *, drop_tombstones: bool = False) -> InMemorySchemaLog:
        """A new log with only the latest record of each key, offsets kept (as Kafka does).

        ``drop_tombstones`` also removes null values, as Kafka does once
        ``delete.retention.ms`` has passed.
        """
        with self._changed:
            latest = {r.key: r for r in self._records}
            end = self._end
        kept = sorted(latest.values(), key=lambda r: r.offset)
        if drop_tombstones:
            kept = [r for r in kept if r.value is not None]
        log = InMemorySchemaLog()
        log._records, log._end = kept, end
        return log
