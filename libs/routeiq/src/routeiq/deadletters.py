"""Poison records to the dead-letter topic: the one producer every consumer uses.

The policy, the same in every consumer: a record that cannot be decoded or fails its contract
is dead-lettered, never dropped, and dead-lettered once. ``send`` queues a ``DeadLetter`` (raw
key and value bytes, source topic/partition/offset/timestamp, headers, error class and
message, which consumer gave up; built by ``routeiq.contracts.records.DeadLetter``) keyed by
its source position, and ``flush`` waits until every queued one is acknowledged. A consumer
flushes before it commits the source offsets, so a crash in between re-reads the record
instead of losing it.

Re-reading is where a second dead letter would come from: a crash after the flush but before
the commit, or a consumer that replays a window on purpose (analytics rebuilds its state from
the last hour). So a sink first ``recall``s what its consumer already wrote — the dead-letter
topic's recent keys carrying its consumer header — and ``send`` skips a source position it
has written before. Kafka transactions would give the same guarantee only for consumers that
commit through a transactional producer; the labeler is a Faust app and analytics replays
below its committed offsets, so reading the topic back is the one rule that fits every
consumer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, Unpack

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)

from routeiq.contracts.records import CONSUMER_HEADER, DeadLetter, ExplicitCause, KafkaMessage
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import TransportError
from routeiq.kafka import make_consumer, read_since
from routeiq.settings import KafkaSettings

log = logging.getLogger(__name__)

# How far back ``recall`` reads: longer than any consumer's replay window (analytics: an
# hour) and than a consumer is expected to stay down with uncommitted work.
RECALL_LOOKBACK_S = 7 * 24 * 3600.0

SourcePosition = tuple[str, int, int]
T = TypeVar("T")


def source_position(key: bytes | None) -> SourcePosition | None:
    """``topic/partition/offset`` (a dead letter's Kafka key) → its parts; ``None`` for a key
    in another form (dead letters written before keys named the position)."""
    if not key:
        return None
    try:
        topic, partition, offset = key.decode("utf-8").rsplit("/", 2)
        return topic, int(partition), int(offset)
    except (UnicodeDecodeError, ValueError):
        return None


# eq=False: a sink holds a producer and pending state; compared by identity.
@dataclass(kw_only=True, eq=False)
class DeadLetterSink:
    """Produces each poison record's ``DeadLetter`` once; ``flush`` confirms delivery."""

    producer: Producer
    serde: AvroSerde
    topic: str
    consumer: str
    clock: Callable[[], float] = time.time
    # Source positions this consumer's dead letters are known to be in the topic for.
    _written: set[SourcePosition] = field(init=False, repr=False, default_factory=set)
    # Queued since the last flush; written once acknowledged.
    _pending: set[SourcePosition] = field(init=False, repr=False, default_factory=set)
    # Delivery errors reported since the last flush.
    _failures: list[str] = field(init=False, repr=False, default_factory=list)

    def send(
        self,
        message: KafkaMessage,
        error: BaseException | None = None,
        **explained: Unpack[ExplicitCause],
    ) -> DeadLetter | None:
        """Queue the dead letter for ``message`` (the error, or an explicit type and reason);
        ``None`` when this consumer has already dead-lettered that source position."""
        letter = DeadLetter.from_message(
            message,
            error=error,
            consumer=self.consumer,
            now_ms=int(self.clock() * 1000),
            **explained,
        )
        return self.send_letter(letter)

    def send_letter(self, letter: DeadLetter) -> DeadLetter | None:
        """Queue a built ``DeadLetter`` (for consumers whose messages are not confluent-kafka
        ``Message``s, such as Faust's); ``None`` when its position was dead-lettered before."""
        position = letter.source_position
        if position in self._written or position in self._pending:
            return None
        value = self.serde.encode(letter.to_record())
        try:
            self.producer.produce(
                self.topic,
                key=letter.kafka_key,
                value=value,
                headers={CONSUMER_HEADER: self.consumer.encode("utf-8")},
                on_delivery=lambda error, message: self._delivered(position, error, message),
            )
        except (KafkaException, BufferError) as exc:
            raise TransportError(f"cannot queue a dead letter to {self.topic}: {exc}") from exc
        self._pending.add(position)
        return letter

    def _delivered(
        self, position: SourcePosition, error: KafkaError | None, _message: Message
    ) -> None:
        self._pending.discard(position)
        if error is None:
            self._written.add(position)
        else:
            self._failures.append(str(error))

    def flush(self, timeout_s: float) -> None:
        """Wait for every queued dead letter; ``TransportError`` if any is not acknowledged
        (its position is then free to be sent again, so the retry after a failed commit
        writes it)."""
        left = self.producer.flush(timeout_s)
        if left or self._failures:
            failures, self._failures = self._failures, []
            raise TransportError(
                f"dead letters to {self.topic} not acknowledged: {left} still queued after "
                f"{timeout_s:.0f}s; failures: {failures or 'none'}"
            )

    def has_written(self, topic: str, partition: int, offset: int) -> bool:
        """Whether this consumer's dead letter for that source position is in the topic."""
        return (topic, partition, offset) in self._written

    def recall(
        self,
        reader: Consumer,
        *,
        lookback_s: float = RECALL_LOOKBACK_S,
        timeout_s: float = 30.0,
    ) -> int:
        """Read the dead-letter topic's last ``lookback_s`` and remember every source position
        this consumer dead-lettered, so a replay skips them; returns how many it found.

        ``reader`` is a consumer this call owns and closes (no group commits: it only
        ``assign``s). Call it before the first record is processed, and again when a
        partition moves here from another replica of the same consumer.
        """
        try:
            found = self._read_back(reader, lookback_s=lookback_s, timeout_s=timeout_s)
        except KafkaException as exc:
            raise TransportError(f"cannot read back {self.topic}: {exc}") from exc
        finally:
            reader.close()
        self._written |= found
        log.info(
            "%s: %d dead letters already written in the last %.0f h",
            self.consumer,
            len(found),
            lookback_s / 3600,
        )
        return len(found)

    def _read_back(
        self, reader: Consumer, *, lookback_s: float, timeout_s: float
    ) -> set[SourcePosition]:
        since_ms = int((self.clock() - lookback_s) * 1000)
        found: set[SourcePosition] = set()
        for message in read_since(reader, self.topic, since_ms=since_ms, timeout_s=timeout_s):
            if _consumer_of(message) == self.consumer:
                position = source_position(message.key())
                if position is not None:
                    found.add(position)
        return found


def recall_reader(
    kafka: KafkaSettings, consumer: str, overrides: Mapping[str, Any] | None = None
) -> Consumer:
    """The consumer ``DeadLetterSink.recall`` reads with for ``consumer``: it only assigns,
    so its group and client id (named after the consumer, for operators) hold no offsets."""
    return make_consumer(
        kafka,
        group_id=f"{consumer}.dead-letter-recall",
        client_id=f"{consumer}.dead-letter-recall",
        overrides=overrides,
    )


def _consumer_of(message: Message) -> str | None:
    for name, value in message.headers() or ():
        if name == CONSUMER_HEADER and isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
    return None
