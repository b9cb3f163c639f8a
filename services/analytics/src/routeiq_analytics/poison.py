"""Analytics' poison policy: a record it cannot decode or use becomes one dead letter.

Every failure to decode or validate a record (garbage bytes, an empty or missing value, a
truncated body, an unknown schema id, the id of another contract, a value that breaks the
rules the aggregates rely on) is dead-lettered through ``routeiq.deadletters.DeadLetterSink``
with the reason and the raw bytes, and the loop moves on: a record never stops the consumer.

Dead-lettered once, also across restarts. Analytics replays the last hour on every start, so
the same poison is read again and again; two guards keep it from being written again:

- below the committed offset the record was handled by an earlier run, which flushed its dead
  letter before committing: counted as ``poison_replayed``, nothing is sent;
- at or above it (a crash after the flush but before the commit) the sink's ``recall`` of this
  consumer's dead letters, read back before the first record, makes ``send`` return ``None``:
  also ``poison_replayed``.

A batch's dead letters are acknowledged before its offsets are committed. While Kafka cannot
take them the flush is retried (the dependency is reported lost once, not per retry) instead
of failing the service; a stop during that wait commits nothing, so the batch is re-read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependency
from routeiq.errors import ContractError, TransportError

from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.errors import ConsumerStoppedError
from routeiq_analytics.metrics import AnalyticsMetrics

log = logging.getLogger(__name__)

DEAD_LETTERED = "dead_lettered"
# A poison record read again (the start-up replay, a re-read after a crash): no new letter.
REPLAYED = "poison_replayed"
# Log lines carry a short reason; the dead letter keeps the full one.
REASON_CHARS = 300


def short_reason(error: BaseException) -> str:
    """``ErrorType: message`` cut to ``REASON_CHARS`` (a schema dump never reaches a log)."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "…"


@dataclass(kw_only=True, eq=False)
class PoisonPolicy:
    """Dead-letters poison records once each and makes them durable before a commit."""

    sink: DeadLetterSink
    kafka: Dependency
    aggregator: Aggregator
    metrics: AnalyticsMetrics
    retry_backoff_s: float = 1.0
    flush_timeout_s: float = 10.0
    recall_timeout_s: float = 30.0
    # Sent since the last successful flush: re-sent if Kafka lost them.
    _unconfirmed: list[tuple[Message, ContractError]] = field(
        init=False, repr=False, default_factory=list
    )

    def recall(self, reader: Callable[[], Consumer], stop: threading.Event) -> int:
        """Read back this consumer's dead letters before the first record (the start-up
        replay reads poison again); retried while Kafka is unavailable. How many it found."""
        while True:
            try:
                found = self.sink.recall(reader(), timeout_s=self.recall_timeout_s)
            except TransportError as exc:
                self.kafka.failed(exc)
                if stop.wait(self.retry_backoff_s):
                    raise ConsumerStoppedError("stopped before the dead letters were read") from exc
                continue
            self.kafka.recovered()
            return found

    def reject(self, message: Message, kind: str, error: ContractError, *, replay: bool) -> bool:
        """Dead-letter ``message`` unless it already was; True when a new letter was queued.

        ``replay``: the record is below the group's committed offset (handled before)."""
        letter = None if replay else self.sink.send(message, error)
        where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        if letter is None:
            self.aggregator.count(REPLAYED)
            self.metrics.records.labels(kind, REPLAYED).inc()
            log.debug("poison %s read again, dead-lettered before: %s", where, short_reason(error))
            return False
        self._unconfirmed.append((message, error))
        self.aggregator.count(DEAD_LETTERED)
        self.metrics.records.labels(kind, DEAD_LETTERED).inc()
        self.metrics.dead_lettered.labels(kind, type(error).__name__).inc()
        log.warning("dead-lettered %s %s: %s", kind, where, short_reason(error))
        return True

    def flush(self, stop: threading.Event) -> None:
        """Wait until every dead letter sent since the last flush is acknowledged; while
        Kafka cannot take them, retry (re-sending the ones it failed) until ``stop``."""
        while self._unconfirmed:
            try:
                self.sink.flush(self.flush_timeout_s)
            except TransportError as exc:
                self.kafka.failed(exc)
                if stop.wait(self.retry_backoff_s):
                    raise ConsumerStoppedError(
                        "stopped before dead letters were acknowledged"
                    ) from exc
                for message, error in self._unconfirmed:
                    self.sink.send(message, error)  # None while still queued or already written
                continue
            self._unconfirmed.clear()
            self.kafka.recovered()

    def serve(self) -> None:
        """Serve the dead-letter producer's callbacks (delivery reports, errors, logs)
        between batches, so they do not wait for the next flush."""
        self.sink.producer.poll(0)
