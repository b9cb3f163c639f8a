"""Poison records to the dead-letter topic, with the reason and where they came from.

A record is dead-lettered, never dropped: ``send`` produces a ``DeadLetter`` (raw key and
value bytes, source topic/partition/offset/timestamp, headers, error class and message, which
consumer gave up) and ``flush`` waits until every one is acknowledged. The consumer loop
flushes before it commits the source offsets, so a crash in between re-reads the record
instead of losing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import TransportError


def _headers(message: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in message.headers() or []:
        if isinstance(value, bytes | bytearray):
            out[str(name)] = bytes(value).decode("utf-8", errors="replace")
        else:
            out[str(name)] = "" if value is None else str(value)
    return out


def dead_letter_record(
    message: Message, error: BaseException, *, consumer: str, now_ms: int
) -> dict[str, Any]:
    """The ``DeadLetter`` record for one message this consumer cannot process."""
    timestamp_type, timestamp_ms = message.timestamp()
    return {
        "source_topic": message.topic(),
        "source_partition": message.partition(),
        "source_offset": message.offset(),
        "source_timestamp": timestamp_ms if timestamp_type != 0 else None,
        "key": message.key(),
        "value": message.value(),
        "headers": _headers(message),
        "error_type": type(error).__name__,
        "reason": str(error) or repr(error),
        "consumer": consumer,
        "failed_at": now_ms,
    }


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

    def send(self, message: Message, error: BaseException) -> None:
        """Queue one dead letter (encoded with the registered ``DeadLetter`` schema)."""
        record = dead_letter_record(
            message, error, consumer=self._consumer, now_ms=int(self._clock() * 1000)
        )
        value = self._serde.encode(record)
        try:
            self._producer.produce(
                self._topic,
                key=str(message.topic()).encode(),
                value=value,
                on_delivery=self._delivered,
            )
        except (KafkaException, BufferError) as exc:
            raise TransportError(f"cannot queue a dead letter to {self._topic}: {exc}") from exc

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
