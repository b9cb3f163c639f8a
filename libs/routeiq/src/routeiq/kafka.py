"""Kafka client factories and idempotent topic management over confluent-kafka.

Producers are idempotent with ``acks=all`` so a retry never duplicates or reorders an event;
consumers commit explicitly so offsets move only after the work is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from routeiq.contracts.topics import TopicSpec
from routeiq.errors import TransportError
from routeiq.settings import KafkaSettings

T = TypeVar("T")


def producer_config(
    settings: KafkaSettings, *, client_id: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka producer properties: idempotent, acks=all, compressed, small linger."""
    config: dict[str, Any] = {
        **settings.client_config(),
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
    }
    config.update(overrides or {})
    return config


def consumer_config(
    settings: KafkaSettings,
    *,
    group_id: str,
    client_id: str,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """librdkafka consumer properties: explicit commits, read committed, earliest by default."""
    config: dict[str, Any] = {
        **settings.client_config(),
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.session_timeout_ms,
    }
    config.update(overrides or {})
    return config


def make_producer(
    settings: KafkaSettings, *, client_id: str, overrides: Mapping[str, Any] | None = None
) -> Producer:
    """Build an idempotent producer (see ``producer_config``)."""
    try:
        return Producer(producer_config(settings, client_id=client_id, overrides=overrides))
    except KafkaException as exc:
        raise TransportError(f"cannot create Kafka producer: {exc}") from exc


def make_consumer(
    settings: KafkaSettings,
    *,
    group_id: str,
    client_id: str,
    overrides: Mapping[str, Any] | None = None,
) -> Consumer:
    """Build a consumer that commits only when told to (see ``consumer_config``)."""
    try:
        return Consumer(
            consumer_config(settings, group_id=group_id, client_id=client_id, overrides=overrides)
        )
    except KafkaException as exc:
        raise TransportError(f"cannot create Kafka consumer: {exc}") from exc


def make_admin(settings: KafkaSettings) -> AdminClient:
    """Build an admin client."""
    try:
        return AdminClient(settings.client_config())
    except KafkaException as exc:
        raise TransportError(f"cannot create Kafka admin client: {exc}") from exc


@dataclass(frozen=True)
class TopicChange:
    """What ``apply_topics`` did to one topic."""

    name: str
    action: str  # created | updated | unchanged
    details: str = ""


def apply_topics(
    admin: AdminClient, specs: Iterable[TopicSpec], *, timeout: float = 30.0
) -> list[TopicChange]:
    """Create missing topics and align the configs of existing ones; never drops anything.

    Partition counts of existing topics are not changed: adding partitions re-maps keys and
    breaks co-partitioned joins, so a mismatch is an error the operator must resolve.
    """
    specs = list(specs)
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise TransportError(f"cannot list topics: {exc}") from exc

    changes: list[TopicChange] = []
    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    config=dict(s.configs),
                )
                for s in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for spec in missing:
            try:
                futures[spec.name].result(timeout=timeout)
            except KafkaException as exc:
                if exc.args and exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
                    changes.append(TopicChange(spec.name, "unchanged", "created concurrently"))
                    continue
                raise TransportError(f"cannot create topic {spec.name}: {exc}") from exc
            changes.append(
                TopicChange(
                    spec.name, "created", f"{spec.partitions} partitions, {spec.configs or {}}"
                )
            )

    for spec in specs:
        if spec in missing:
            continue
        actual_partitions = len(existing[spec.name].partitions)
        if actual_partitions != spec.partitions:
            raise TransportError(
                f"topic {spec.name} has {actual_partitions} partitions, declared "
                f"{spec.partitions}; RouteIQ does not repartition existing topics (it would "
                "re-map keys and break co-partitioned joins)"
            )
        drift = _config_drift(admin, spec, timeout)
        if not drift:
            changes.append(TopicChange(spec.name, "unchanged"))
            continue
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in drift.items()
            ],
        )
        try:
            for future in admin.incremental_alter_configs([resource]).values():
                future.result(timeout=timeout)
        except KafkaException as exc:
            raise TransportError(f"cannot update configs of {spec.name}: {exc}") from exc
        changes.append(TopicChange(spec.name, "updated", f"set {drift}"))
    return changes


def _config_drift(admin: AdminClient, spec: TopicSpec, timeout: float) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
    try:
        (future,) = admin.describe_configs([resource]).values()
        actual = {name: entry.value for name, entry in future.result(timeout=timeout).items()}
    except KafkaException as exc:
        raise TransportError(f"cannot describe configs of {spec.name}: {exc}") from exc
    return {k: v for k, v in spec.configs.items() if actual.get(k) != v}


def broker_version(admin: AdminClient, *, timeout: float = 10.0) -> dict[str, str]:
    """The broker's identity through the admin API: id, protocol version, metadata version.

    Apache Kafka reports ``inter.broker.protocol.version`` (e.g. ``3.9-IV0``) in its broker
    configs; an emulator would not, which is how the stack proves it runs the real broker.
    """
    try:
        metadata = admin.list_topics(timeout=timeout)
        broker_id = next(iter(metadata.brokers))
        resource = ConfigResource(ConfigResource.Type.BROKER, str(broker_id))
        (future,) = admin.describe_configs([resource]).values()
        configs = future.result(timeout=timeout)
    except (KafkaException, StopIteration) as exc:
        raise TransportError(f"cannot describe the broker: {exc}") from exc
    wanted = ("inter.broker.protocol.version", "process.roles", "node.id")
    info = {"broker_id": str(broker_id), "cluster_id": str(metadata.cluster_id)}
    info.update({k: str(configs[k].value) for k in wanted if k in configs})
    return info


def read_since(
    reader: Consumer, topic: str, *, since_ms: int, timeout_s: float
) -> Iterator[Message]:
    """Every message of ``topic`` written since ``since_ms`` (epoch ms), every partition, up to
    the end each partition had when the read began; then it stops.

    ``reader`` only ``assign``s (no group offsets move); the caller closes it. Raises
    ``TransportError`` when the topic cannot be read or its end is not reached within
    ``timeout_s``, and ``KafkaException`` on a broker error while reading.
    """
    metadata = reader.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise TransportError(f"topic {topic} is not readable")
    deadline = time.monotonic() + timeout_s
    starts = _retrying(
        lambda: reader.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in metadata.partitions],
            timeout=timeout_s,
        ),
        deadline,
    )
    ends: dict[int, int] = {}
    for start in starts:
        _, high = _retrying(partial(reader.get_watermark_offsets, start, timeout_s), deadline)
        # OFFSET_END: nothing written since ``since_ms`` in that partition.
        if start.offset != OFFSET_END and 0 <= start.offset < high:
            ends[start.partition] = high
    if not ends:
        return
    reader.assign([s for s in starts if s.partition in ends])
    deadline = time.monotonic() + timeout_s
    while ends:
        if time.monotonic() > deadline:
            raise TransportError(f"reading {topic} did not reach its end within {timeout_s:.0f}s")
        message = reader.poll(0.5)
        if message is None:
            # Positions, not the last message seen: a transaction marker occupies an
            # offset no message is returned for.
            for position in reader.position([TopicPartition(topic, p) for p in ends]):
                if position.offset >= ends[position.partition]:
                    del ends[position.partition]
            continue
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(message.error())
        yield message
        partition, offset = message.partition(), message.offset()
        if partition in ends and offset is not None and offset + 1 >= ends[partition]:
            del ends[partition]


# Offset lookups fail with these while a topic is new or its leader moves; librdkafka does not
# always mark them retriable.
_TRANSIENT = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


def _retrying(call: Callable[[], T], deadline: float) -> T:
    """``call()``, again while it fails with a retriable Kafka error (a topic created moments
    ago has no partition leader yet: NOT_LEADER_FOR_PARTITION) until ``deadline``."""
    while True:
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and (
                error.retriable() or error.code() in _TRANSIENT
            )
            if not retriable or time.monotonic() > deadline:
                raise
        time.sleep(0.2)
