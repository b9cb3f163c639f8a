"""Poison records to the dead-letter topic: the one producer every confluent-kafka consumer uses.

A record is dead-lettered, never dropped: ``send`` queues a ``DeadLetter`` (raw key and value
bytes, source topic/partition/offset/timestamp, headers, error class and message, which
consumer gave up; built by ``routeiq.contracts.records.DeadLetter``) and ``flush`` waits until
every queued one is acknowledged. A consumer flushes before it commits the source offsets, so
a crash in between re-reads the record instead of losing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from routeiq.contracts.records import DeadLetter, KafkaMessage
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import TransportError


class DeadLetterSink:
    """Produces ``DeadLetter`` records keyed by source topic; ``flush`` confirms delivery."""

    def __init__(
        self,
        *,
        producer: Producer,
        serde: AvroSerde,
        topic: str,
        consumer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._producer = producer
        self._serde = serde
        self._topic = topic
        self._consumer = consumer
        self._clock = clock
        self._failures: list[str] = []

    @property
    def topic(self) -> str:
        return self._topic

    def send(
        self,
        message: KafkaMessage,
        error: BaseException | None = None,
        *,
        error_type: str | None = None,
        reason: str | None = None,
    ) -> DeadLetter:
        """Queue one dead letter for ``message`` (the error, or an explicit type and reason)."""
        letter = DeadLetter.from_message(
            message,
            error=error,
            error_type=error_type,
            reason=reason,
            consumer=self._consumer,
            now_ms=int(self._clock() * 1000),
        )
        value = self._serde.encode(letter.to_record())
        try:
            self._producer.produce(
                self._topic, key=letter.kafka_key, value=value, on_delivery=self._delivered
            )
        except (KafkaException, BufferError) as exc:
            raise TransportError(f"cannot queue a dead letter to {self._topic}: {exc}") from exc
        return letter

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))

    def flush(self, timeout_s: float) -> None:
        """Wait for every queued dead letter; ``TransportError`` if any is not acknowledged."""
        left = self._producer.flush(timeout_s)
        if left or self._failures:
            failures, self._failures = self._failures, []
            raise TransportError(
                f"dead letters to {self._topic} not acknowledged: {left} still queued after "
                f"{timeout_s:.0f}s; failures: {failures or 'none'}"
            )
