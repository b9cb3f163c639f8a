"""The Faust plumbing of the labeler: the app, its partition-keyed tables, its serdes.

How the worker talks to Kafka (aiokafka through Faust) is decided here; what it does with
the records is ``routeiq_labeler.worker`` and ``core``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.tables.table import Table
from routeiq.contracts.catalog import DEAD_LETTER, FEEDBACK, RETRAIN_REQUEST, ROUTER_DECISION
from routeiq.contracts.records import DeadLetter
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.dependencies import fold_repeats

from routeiq_labeler.config import LabelerSettings


class PartitionedTable(Table[str, Any]):
    """A Faust table whose keys name their partition (``"<p>/..."``).

    Faust sends a table change to the changelog partition of the event being processed, so a
    change made from a timer fails. Our keys carry the source partition, which lets the tick
    write to the right changelog partition too (and agrees with Faust inside the agent).
    """

    def partition_for_key(self, key: Any) -> int:
        partition, sep, _ = str(key).partition("/")
        if not sep or not partition.isdigit():
            raise ValueError(f"table key {key!r} does not start with '<partition>/'")
        return int(partition)


@dataclass(frozen=True)
class Serdes:
    """One ``AvroSerde`` per topic the worker reads or writes."""

    decisions: AvroSerde
    feedback: AvroSerde
    deadletter: AvroSerde
    retrain: AvroSerde


# Faust's web server carries only our routes (health, /metrics); its own pages stay off.
_FAUST_PAGES_OFF: dict[str, Any] = {
    f"web_{page}_enabled": False for page in ("stats", "graph", "tables", "router", "metrics")
}


def faust_app(settings: LabelerSettings, *, partitions: int) -> faust.App:
    """The Faust app: in-memory stores recovered from changelog topics with ``partitions``
    partitions (the join's co-partitioning), at-least-once offsets committed only after the
    changelog is flushed."""
    kafka = settings.kafka
    credentials = None
    if kafka.security_protocol == "SASL_PLAINTEXT":
        assert kafka.sasl_password is not None  # checked by LabelerSettings
        credentials = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            mechanism=kafka.sasl_mechanism,
        )
    session_s = kafka.session_timeout_ms / 1000
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=credentials,
        store="memory://",
        topic_partitions=partitions,
        topic_replication_factor=settings.changelog_replication_factor,
        topic_disable_leader=True,
        datadir=str(settings.data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # Every record changes a table, so the changelog gets one record per input record:
        # linger and big compressed batches instead of one produce request per change.
        producer_linger=0.01,
        producer_max_batch_size=1_048_576,
        producer_compression_type="lz4",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(0.5, min(3.0, session_s / 4)),
        broker_commit_interval=settings.commit_interval_s,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        **_FAUST_PAGES_OFF,
    )


class QuietWorker(faust.Worker):
    """Faust's worker, with ``routeiq.service``'s rule for repeated failures: Faust (through
    mode) replaces the root handlers when it starts, so ``configure_logging``'s filter would
    be gone; it is added here, to the handlers Faust's worker logs through. aiokafka logs one
    ERROR per connection retry while Kafka is away (hundreds a second under load); folded, a
    lost broker costs a line a minute per message."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        fold_repeats(logger.handlers)


def build_serdes(settings: LabelerSettings, resolver: RegistryResolver) -> Serdes:
    """One serde per topic, subjects by TopicNameStrategy. The writers' schema ids are looked
    up now, so an unregistered dead-letter or retrain subject fails the start, not the first
    poison record."""
    serdes = Serdes(
        decisions=AvroSerde.for_topic(ROUTER_DECISION, settings.decisions_topic, resolver=resolver),
        feedback=AvroSerde.for_topic(FEEDBACK, settings.feedback_topic, resolver=resolver),
        deadletter=AvroSerde.for_topic(DEAD_LETTER, settings.deadletter_topic, resolver=resolver),
        retrain=AvroSerde.for_topic(RETRAIN_REQUEST, settings.retrain_topic, resolver=resolver),
    )
    for writer in (serdes.deadletter, serdes.retrain):
        _ = writer.schema_id
    return serdes


def source_topic(app: faust.App, *topics: str) -> faust.TopicT:
    """The agent's input: keys and values as raw bytes. Faust decodes before the agent sees
    an event and acks (skips) a record it cannot decode, without a dead letter; the raw codec
    cannot fail, so every record reaches the agent, which decodes it under the poison policy
    (``routeiq_labeler.poison``)."""
    return app.topic(
        *topics,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


def partitioned_tables(app: faust.App, names: tuple[str, ...]) -> dict[str, PartitionedTable]:
    """The worker's tables, added to ``app`` (recovered from their changelogs at start)."""
    tables = {
        name: PartitionedTable(
            app, name=name, partitions=app.conf.topic_partitions, beacon=app.tables.beacon
        )
        for name in names
    }
    for table in tables.values():
        app.tables.add(table)
    return tables


def faust_dead_letter(
    message: Any, error: BaseException, *, consumer: str, now_ms: int
) -> DeadLetter:
    """The ``DeadLetter`` for a Faust message (its timestamp is in float seconds)."""
    timestamp = getattr(message, "timestamp", None)
    return DeadLetter.of(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=None if timestamp is None else int(timestamp * 1000),
        key=message.key,
        value=message.value,
        headers=message.headers,
        error=error,
        consumer=consumer,
        now_ms=now_ms,
    )
