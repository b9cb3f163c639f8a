"""The consumer loop: a template for reading RouteIQ's governed topics.

What every RouteIQ consumer should do, and this one does:

1. **Its own consumer group** (``group_id``), so it reads at its own pace and never moves
   another consumer's offsets.
2. **Avro through the schema registry**: each value names its writer schema by id; the serde
   resolves it and reads it into our reader schema (the contract's working copy), so producers
   can move to newer compatible versions without breaking us.
3. **One error policy per record** (``poison.PoisonPolicy``): a record that cannot be decoded,
   or decodes into something the aggregates cannot use, goes to the dead-letter topic once,
   with the reason and its source coordinates; the loop keeps going. A *transient* failure
   (the registry unreachable) is not poison: the same record is retried until it decodes or
   the loop is stopped.
4. **Explicit commits after the work**: offsets are committed per batch, after the batch is
   applied and its dead letters are acknowledged. A crash re-reads, never skips.
5. **Rebuilding in-memory state on start** (``rebuild_s``): when partitions are assigned, the
   loop seeks back to the first record of the last ``rebuild_s`` seconds, so a restart
   rebuilds its windows from Kafka. Records below the committed offset are *replays*: they
   update the aggregates but are not dead-lettered again, and commits never move backwards.
6. **Degrading quietly**: Kafka or the registry lost is one WARNING, a reminder a minute and
   one INFO when it is back (``routeiq.dependencies``), never a line per poll or retry; the
   loop waits for it instead of exiting.

One process should own all partitions of both topics (one replica per group): the aggregates
live in memory, so a second replica in the same group would hold the other half of the data.
That is also why the dead letters are recalled once, at start, and not again on assignment:
no partition arrives from another replica with dead letters this process has not read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError
from routeiq.contracts.serde import AvroSerde
from routeiq.dependencies import Dependencies, Dependency
from routeiq.errors import ContractError, RegistryError, SerializationError, TransportError

from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.core.records import Decision, Feedback, parse_decision, parse_feedback
from routeiq_analytics.errors import ConsumerStoppedError
from routeiq_analytics.metrics import AnalyticsMetrics
from routeiq_analytics.poison import PoisonPolicy

log = logging.getLogger(__name__)

TopicKey = tuple[str, int]

# While Kafka is lost and nothing arrives, how often the loop asks the broker whether it is back.
PROBE_EVERY_S = 5.0


@dataclass(frozen=True)
class Sources:
    """The two topics analytics reads and the serde for each."""

    decisions_topic: str
    feedback_topic: str
    decisions: AvroSerde
    feedback: AvroSerde


def registry_unavailable(exc: BaseException) -> bool:
    """True when a decode failed because the registry could not answer, not the record.

    The serde raises ``RegistryError`` when the registry is unreachable; an error *answer*
    becomes ``SerializationError`` with the client's error as cause, and a 5xx answer there
    is the registry's problem, not the record's.
    """
    if isinstance(exc, RegistryError):
        return True
    cause = exc.__cause__
    return isinstance(cause, SchemaRegistryError) and cause.http_status_code >= 500


def start_offset(
    *, position: int | None, committed: int, by_time: int | None, high: int
) -> int | None:
    """Where an assigned partition starts; ``None`` leaves it to the group (committed offset,
    else ``auto.offset.reset``).

    ``position``: the next offset this process would apply (it already holds what came
    before). ``committed``: the group's offset (negative when none). ``by_time``: the first
    offset at or after ``now - rebuild_s`` (``None`` without rebuild; negative when no record
    is that recent). ``high``: the partition's end.
    """
    if position is not None:
        return position
    if by_time is None:
        return None
    rebuild_from = by_time if by_time >= 0 else high
    return min(committed, rebuild_from) if committed >= 0 else rebuild_from


@dataclass(kw_only=True, eq=False, repr=False)
class AnalyticsConsumer:
    """Reads decisions and feedback, feeds the aggregator, dead-letters poison, commits."""

    consumer: Consumer
    sources: Sources
    aggregator: Aggregator
    poison: PoisonPolicy
    # A fresh consumer for reading back the dead-letter topic (``PoisonPolicy.recall``).
    recall_reader: Callable[[], Consumer]
    metrics: AnalyticsMetrics
    dependencies: Dependencies
    rebuild_s: int | None = None
    batch_size: int = 500
    poll_timeout_s: float = 1.0
    retry_backoff_s: float = 1.0
    kafka_timeout_s: float = 10.0
    probe_every_s: float = PROBE_EVERY_S
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    # Why the loop stopped, for /health/ready; set by whoever runs it.
    failure: str | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _assigned: set[TopicKey] = field(default_factory=set, init=False)
    # Offsets below these were processed (and dead-lettered) before: replays.
    _replay_until: dict[TopicKey, int] = field(default_factory=dict, init=False)
    # High watermarks at assignment; a partition is caught up once it reaches its own.
    _behind: set[TopicKey] = field(default_factory=set, init=False)
    _high: dict[TopicKey, int] = field(default_factory=dict, init=False)
    # Next offset per partition this process has applied (kept across rebalances so a
    # partition that comes back is not applied twice).
    _positions: dict[TopicKey, int] = field(default_factory=dict, init=False)
    _probed_at: float = field(default=0.0, init=False)

    # ------------------------------------------------------------------ lifecycle

    def subscribe(self) -> None:
        """Join the group on both topics; offsets are chosen in ``_on_assign``."""
        topics = [self.sources.decisions_topic, self.sources.feedback_topic]
        try:
            self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        except KafkaException as exc:
            raise TransportError(f"cannot subscribe to {topics}: {exc}") from exc

    def run(self, stop: threading.Event) -> None:
        """Recall the dead letters, then poll, process and commit batches until ``stop``."""
        try:
            self.poison.recall(self.recall_reader, stop)
        except ConsumerStoppedError:
            return
        self.subscribe()
        while not stop.is_set():
            try:
                messages = self.consumer.consume(self.batch_size, self.poll_timeout_s)
            except KafkaException as exc:
                raise TransportError(f"consume failed: {exc}") from exc
            self._watch_kafka(messages)
            if messages:
                try:
                    self.process(messages, stop)
                except ConsumerStoppedError:
                    return
            self.poison.serve()
            self.metrics.ready.set(1 if self.ready else 0)

    @property
    def kafka(self) -> Dependency:
        return self.dependencies["kafka"]

    def _watch_kafka(self, messages: Sequence[Message]) -> None:
        """A record (or an end of partition) read means Kafka is back; while it is lost and
        nothing arrives (an idle topic), ask the broker every ``probe_every_s``."""
        if any(
            m.error() is None or m.error().code() == KafkaError._PARTITION_EOF for m in messages
        ):
            self.kafka.recovered()
            return
        now = self.monotonic()
        if self.kafka.up or now - self._probed_at < self.probe_every_s:
            return
        self._probed_at = now
        try:
            self.consumer.list_topics(self.sources.decisions_topic, timeout=self.poll_timeout_s)
        except KafkaException as exc:
            self.kafka.failed(exc)
            return
        self.kafka.recovered()

    def close(self) -> None:
        """Leave the group (offsets were committed batch by batch)."""
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer: %s", exc)

    @property
    def ready(self) -> bool:
        """Partitions assigned and every one caught up to its end at assignment time."""
        with self._lock:
            return bool(self._assigned) and not self._behind and self.failure is None

    def status(self) -> dict[str, Any]:
        """What ``/health/ready`` reports (the dependencies' states included)."""
        with self._lock:
            status: dict[str, Any] = {
                "assigned_partitions": len(self._assigned),
                "partitions_catching_up": len(self._behind),
                "failure": self.failure,
            }
        status["dependencies"] = self.dependencies.states()
        return status

    # ------------------------------------------------------------------ one batch

    def process(self, messages: Sequence[Message], stop: threading.Event) -> None:
        """Apply a batch, make its dead letters durable, then commit its offsets."""
        offsets: dict[TopicKey, int] = {}
        for message in messages:
            error = message.error()
            key = (str(message.topic()), int(message.partition() or 0))
            if error is not None:
                self._on_error(key, error)
                continue
            self._handle(key, message, stop)
            offset = int(message.offset() or 0)
            offsets[key] = offset + 1
            with self._lock:
                self._positions[key] = offset + 1
                if key in self._behind and offset + 1 >= self._high.get(key, 0):
                    self._behind.discard(key)
        self.poison.flush(stop)
        self._commit(offsets)

    def _handle(self, key: TopicKey, message: Message, stop: threading.Event) -> None:
        """Apply one record, or hand it to the poison policy if it cannot be decoded or used."""
        is_decision = key[0] == self.sources.decisions_topic
        kind = "decision" if is_decision else "feedback"
        try:
            facts = self._facts(is_decision, message.value(), stop)
        except ContractError as exc:
            replay = int(message.offset() or 0) < self._replay_until.get(key, -1)
            self.poison.reject(message, kind, exc, replay=replay)
            return
        if isinstance(facts, Decision):
            outcome = self.aggregator.add_decision(facts)
        else:
            outcome = self.aggregator.add_feedback(facts)
        self.metrics.records.labels(kind, outcome).inc()

    def _facts(
        self, is_decision: bool, value: bytes | None, stop: threading.Event
    ) -> Decision | Feedback:
        """Decode and check one value; every way a value can be bad is a ``ContractError``
        (a registry outage is waited out in ``_decode`` instead)."""
        serde = self.sources.decisions if is_decision else self.sources.feedback
        try:
            record = self._decode(serde, value, stop)
            return parse_decision(record) if is_decision else parse_feedback(record)
        except (ContractError, ConsumerStoppedError):
            raise
        except Exception as exc:  # a decoder bug on one value costs that record, not the loop
            raise SerializationError(f"{serde.subject}: cannot decode: {exc!r}"[:1000]) from exc

    def _decode(self, serde: AvroSerde, value: bytes | None, stop: threading.Event) -> Any:
        registry = self.dependencies["registry"]
        while True:
            try:
                record = serde.decode(value)
            except (RegistryError, SerializationError) as exc:
                if not registry_unavailable(exc):
                    raise
                self.metrics.registry_retries.inc()
                registry.failed(exc)
                if stop.wait(self.retry_backoff_s):
                    raise ConsumerStoppedError("stopped while the registry was down") from exc
                continue
            if not registry.up:
                registry.recovered()
            return record

    def _commit(self, offsets: dict[TopicKey, int]) -> None:
        # Never move a committed offset backwards while replaying below it.
        commit = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in offsets.items()
            if offset > self._replay_until.get((topic, partition), -1)
        ]
        if not commit:
            return
        try:
            self.consumer.commit(offsets=commit, asynchronous=False)
        except KafkaException as exc:
            # A rebalance can refuse the commit; the records are re-read after it, and the
            # aggregator drops what it has already applied (decision and feedback ids).
            self.metrics.commits.labels("failed").inc()
            log.warning("offset commit failed: %s", exc)
            return
        self.metrics.commits.labels("ok").inc()

    def _on_error(self, key: TopicKey, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            with self._lock:
                self._behind.discard(key)
            return
        if error.fatal():
            raise TransportError(f"fatal consumer error: {error}")
        self.metrics.consumer_errors.labels(error.name()).inc()
        log.warning("consumer error on %s[%d]: %s", key[0], key[1], error)

    # ------------------------------------------------------------------ assignment

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Choose where each assigned partition starts, then assign."""
        high: dict[TopicKey, int] = {}
        try:
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.committed(partitions, timeout=self.kafka_timeout_s)
            }
            by_time: dict[TopicKey, int] = {}
            if self.rebuild_s is not None:
                since_ms = int((self.clock() - self.rebuild_s) * 1000)
                query = [TopicPartition(tp.topic, tp.partition, since_ms) for tp in partitions]
                by_time = {
                    (tp.topic, tp.partition): tp.offset
                    for tp in consumer.offsets_for_times(query, timeout=self.kafka_timeout_s)
                }
            for tp in partitions:
                key = (tp.topic, tp.partition)
                low, high[key] = consumer.get_watermark_offsets(
                    tp, timeout=self.kafka_timeout_s, cached=False
                )
                done = committed.get(key, OFFSET_INVALID)
                start = start_offset(
                    position=self._positions.get(key),
                    committed=done,
                    by_time=by_time.get(key),
                    high=high[key],
                )
                if start is not None:
                    tp.offset = start
                effective = start if start is not None else (done if done >= 0 else low)
                with self._lock:
                    self._replay_until[key] = done if done >= 0 else -1
                    if effective < high[key]:
                        self._behind.add(key)
                    else:
                        self._behind.discard(key)
        except KafkaException as exc:
            # Without the lookups the group's committed offsets (or auto.offset.reset) apply;
            # the windows then start from there instead of being rebuilt.
            log.warning("cannot look up offsets on assignment, using the group's: %s", exc)
        with self._lock:
            self._high.update(high)
            self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        consumer.assign(partitions)
        log.info(
            "assigned %d partitions: %s",
            len(partitions),
            ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions),
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                self._assigned.discard((tp.topic, tp.partition))
                self._behind.discard((tp.topic, tp.partition))
