"""``SchemaLog`` on a single-partition, compacted Kafka topic (``_schemas`` by default).

The producer, consumer and admin client come from the composition root (``routeiq.kafka``
factories). The consumer is assigned partition 0 directly (no group membership, no commits):
every start replays the topic from its beginning. It must be created with
``enable.partition.eof=true`` so that the end of the log is seen even when compaction removed
its last records.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

from routeiq_schema_registry.core.log import LogBatch, SchemaLog
from routeiq_schema_registry.core.records import LogRecord
from routeiq_schema_registry.errors import StoreError, StoreTimeoutError

_PARTITION = 0
_BATCH = 500


# eq=False: one log per client set, compared by identity.
@dataclass(kw_only=True, eq=False)
class KafkaSchemaLog(SchemaLog):
    """The registry's log in Kafka: create-if-missing, append with acks=all, read by offset."""

    topic: str
    producer: Producer
    consumer: Consumer
    admin: AdminClient
    replication_factor: int = 1
    _tp: TopicPartition = field(init=False, repr=False)
    # The offset the consumer will return next.
    _position: int | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tp = TopicPartition(self.topic, _PARTITION)

    def prepare(self, timeout_s: float) -> None:
        """Create the topic if missing; refuse one that is not single-partition and compacted."""
        try:
            topics = self.admin.list_topics(timeout=timeout_s).topics
        except KafkaException as exc:
            raise StoreError(f"cannot reach Kafka to list topics: {exc}") from exc
        if self.topic not in topics:
            self._create(timeout_s)
        else:
            self._check_existing(len(topics[self.topic].partitions), timeout_s)

    def _create(self, timeout_s: float) -> None:
        spec = NewTopic(
            self.topic,
            num_partitions=1,
            replication_factor=self.replication_factor,
            config={"cleanup.policy": "compact"},
        )
        futures = self.admin.create_topics(
            [spec], operation_timeout=timeout_s, request_timeout=timeout_s
        )
        try:
            futures[self.topic].result(timeout=timeout_s)
        except TimeoutError as exc:
            raise StoreError(f"cannot create topic {self.topic}: timed out") from exc
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            raise StoreError(f"cannot create topic {self.topic}: {exc}") from exc

    def _check_existing(self, partitions: int, timeout_s: float) -> None:
        if partitions != 1:
            raise StoreError(
                f"topic {self.topic} has {partitions} partitions; the registry's log must have "
                "exactly one (records are ordered only within a partition)"
            )
        resource = ConfigResource(ConfigResource.Type.TOPIC, self.topic)
        try:
            (future,) = self.admin.describe_configs([resource]).values()
            configs = future.result(timeout=timeout_s)
        except (KafkaException, TimeoutError) as exc:
            raise StoreError(f"cannot describe topic {self.topic}: {exc}") from exc
        policy = str(configs["cleanup.policy"].value) if "cleanup.policy" in configs else ""
        if "compact" not in policy.split(","):
            raise StoreError(
                f"topic {self.topic} has cleanup.policy={policy!r}; it must be 'compact' or the "
                "broker would delete registered schemas when their retention expires"
            )

    def append(self, key: bytes, value: bytes | None, *, timeout_s: float) -> int:
        outcome: dict[str, Any] = {}

        def delivered(err: KafkaError | None, msg: Any) -> None:
            outcome["error"] = err
            outcome["offset"] = msg.offset() if err is None else None

        try:
            self.producer.produce(
                self.topic, key=key, value=value, partition=_PARTITION, on_delivery=delivered
            )
        except (KafkaException, BufferError) as exc:
            raise StoreError(f"cannot write to {self.topic}: {exc}") from exc
        self.producer.flush(timeout_s)
        if not outcome:
            raise StoreTimeoutError(
                f"the write to {self.topic} was not acknowledged within {timeout_s:.1f}s"
            )
        if outcome["error"] is not None:
            raise StoreError(f"cannot write to {self.topic}: {outcome['error']}")
        return int(outcome["offset"])

    def end_offset(self, *, timeout_s: float) -> int:
        # Through the admin client first, not the consumer: the consumer's connection is often
        # busy with a long-polling fetch (up to fetch.wait.max.ms), which would delay the answer.
        try:
            futures = self.admin.list_offsets(
                {self._tp: OffsetSpec.latest()}, request_timeout=timeout_s
            )
            (result,) = (future.result(timeout=timeout_s) for future in futures.values())
            return int(result.offset)
        except (KafkaException, TimeoutError) as exc:
            first = exc
        # After a broker restart the admin client can keep answering FENCED_LEADER_EPOCH from
        # a stale leader epoch (make faults left every registration failing for minutes); the
        # consumer, fetching all along, knows the current leader.
        try:
            _, high = self.consumer.get_watermark_offsets(self._tp, timeout=timeout_s)
        except KafkaException as exc:
            raise StoreError(
                f"cannot read the end offset of {self.topic}: {first}; then {exc}"
            ) from exc
        return int(high)

    def read(self, from_offset: int, *, timeout_s: float) -> LogBatch:
        with self._lock:
            if self._position != from_offset:
                start = OFFSET_BEGINNING if from_offset == 0 else from_offset
                try:
                    self.consumer.assign([TopicPartition(self.topic, _PARTITION, start)])
                except KafkaException as exc:
                    raise StoreError(f"cannot read {self.topic}: {exc}") from exc
                self._position = from_offset
            try:
                # consume(n, timeout) waits for n messages or the whole timeout; wait for the
                # first one only, then take whatever else is already there.
                first = self.consumer.poll(timeout_s)
                messages = [] if first is None else [first]
                if first is not None:
                    messages += self.consumer.consume(num_messages=_BATCH, timeout=0)
            except KafkaException as exc:
                raise StoreError(f"cannot read {self.topic}: {exc}") from exc
            records: list[LogRecord] = []
            position = from_offset
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        # Everything before msg.offset() has been delivered (or compacted away).
                        position = max(position, int(msg.offset()))
                        continue
                    raise StoreError(f"cannot read {self.topic}: {err}")
                offset = int(msg.offset())
                if offset < from_offset:
                    continue
                records.append(LogRecord(offset, msg.key() or b"", msg.value()))
                position = max(position, offset + 1)
            self._position = position
            return LogBatch(records, position)

    def close(self) -> None:
        self.producer.flush(5)
        self.consumer.close()
