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
from dataclasses import dataclass, field
from typing import Unpack

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from routeiq.contracts.records import DeadLetter, ExplicitCause, KafkaMessage
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import TransportError


# eq=False: a sink holds a producer and pending failures; compared by identity.
@dataclass(kw_only=True, eq=False)
class DeadLetterSink:
    """Produces ``DeadLetter`` records keyed by source topic; ``flush`` confirms delivery."""

    producer: Producer
    serde: AvroSerde
    topic: str
    consumer: str
    clock: Callable[[], float] = time.time
    # Delivery errors reported since the last flush.
    _failures: list[str] = field(init=False, repr=False, default_factory=list)

    def send(
        self,
        message: KafkaMessage,
        error: BaseException | None = None,
        **explained: Unpack[ExplicitCause],
    ) -> DeadLetter:
        """Queue one dead letter for ``message`` (the error, or an explicit type and reason)."""
        letter = DeadLetter.from_message(
            message,
            error=error,
            consumer=self.consumer,
            now_ms=int(self.clock() * 1000),
            **explained,
        )
        value = self.serde.encode(letter.to_record())
        try:
            self.producer.produce(
                self.topic, key=letter.kafka_key, value=value, on_delivery=self._delivered
            )
        except (KafkaException, BufferError) as exc:
            raise TransportError(f"cannot queue a dead letter to {self.topic}: {exc}") from exc
        return letter

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))

    def flush(self, timeout_s: float) -> None:
        """Wait for every queued dead letter; ``TransportError`` if any is not acknowledged."""
        left = self.producer.flush(timeout_s)
        if left or self._failures:
            failures, self._failures = self._failures, []
            raise TransportError(
                f"dead letters to {self.topic} not acknowledged: {left} still queued after "
                f"{timeout_s:.0f}s; failures: {failures or 'none'}"
            )
