"""Builders for the parts that follow the fleet's logs: model sync (announcements, bundles)
and the control plane (the routing configuration). ``__main__`` calls them."""

from __future__ import annotations

import threading
import uuid

from confluent_kafka import Consumer
from routeiq.contracts.catalog import DEAD_LETTER, MODEL_ANNOUNCEMENT, ROUTING_CONFIG
from routeiq.contracts.serde import AvroSerde, SchemaIdResolver
from routeiq.deadletters import DeadLetterSink, recall_reader
from routeiq.errors import ConfigError
from routeiq.kafka import make_consumer, make_producer
from routeiq.routing.bundle import BundleError, verifier_from
from routeiq.routing.engine import RoutingEngine
from routeiq.routing.strategies import BundleHolder
from routeiq.storage import ArtifactStore, make_minio

from routeiq_gateway.config import GatewaySettings, ModelFile
from routeiq_gateway.features import FeatureService
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.sync.audit import AuditTrail
from routeiq_gateway.sync.bundle_cache import BundleCache
from routeiq_gateway.sync.control import ControlPlane, ControlReader, ControlTopics
from routeiq_gateway.sync.model_sync import ModelSync
from routeiq_gateway.wiring import build_engine, resolve_now

# The log readers' names on their dead letters: one per log for the whole fleet, because every
# replica reads the same log and gives up on the same records, and because the replica id is
# not stable where it matters (a Kubernetes pod name changes with every new pod): a name per
# replica would write each poison record again at every rollout or scale-up.
ANNOUNCEMENTS_CONSUMER = "routeiq-gateway/announcements"
CONTROL_CONSUMER = "routeiq-gateway/control"


def build_sync(
    settings: GatewaySettings,
    *,
    router_name: str,
    holder: BundleHolder,
    features: FeatureService,
    metrics: GatewayMetrics,
    resolver: SchemaIdResolver,
) -> ModelSync:
    """Model sync for ``router_name``: bundles are never used unverified, so a key is needed."""
    if settings.verify_key is None:
        raise ConfigError(
            "ROUTEIQ_GATEWAY_VERIFY_KEY is required to follow router "
            f"{router_name!r} (bundles are never used unverified)"
        )
    try:
        verifier = verifier_from(settings.verify_algorithm, settings.verify_key.get_secret_value())
    except BundleError as exc:
        raise ConfigError(f"ROUTEIQ_GATEWAY_VERIFY_KEY: {exc}") from exc
    # Short timeouts: a Redis that does not answer is reported, never waited on for long.
    redis_client = settings.redis.client(timeout_s=2.0)
    cache = BundleCache(
        name=router_name,
        replica_id=settings.replica_id,
        store=ArtifactStore(make_minio(settings.s3)),
        redis_client=redis_client,
        cache_dir=settings.model_cache_dir,
        cache_volume=settings.cache_volume,
        metrics=metrics,
        lock_ttl_s=settings.lock_ttl_s,
        lock_wait_s=settings.lock_wait_s,
        redis_retries=settings.redis_retries,
    )
    dead_letters = reader_dead_letters(
        settings, ANNOUNCEMENTS_CONSUMER, metrics=metrics, resolver=resolver
    )
    return ModelSync(
        name=router_name,
        replica_id=settings.replica_id,
        consumer=log_consumer(settings, "sync"),
        topic=settings.announcements_topic,
        serde=AvroSerde.for_topic(
            MODEL_ANNOUNCEMENT, settings.announcements_topic, resolver=resolver
        ),
        dead_letters=dead_letters,
        recall_reader=lambda: recall_reader(settings.kafka, dead_letters.consumer),
        cache=cache,
        verifier=verifier,
        holder=holder,
        featurize=features.featurize_many,
        metrics=metrics,
        audit=AuditTrail(
            settings.audit_log,
            redis_client=redis_client,
            name=router_name,
            replica=settings.replica_id,
            redis_state=metrics.dependencies["redis"],
        ),
        keep_versions=settings.keep_versions,
    )


def log_consumer(settings: GatewaySettings, role: str) -> Consumer:
    """A consumer that reads a whole log from the beginning and says when it reaches the end."""
    return make_consumer(
        settings.kafka,
        # A fresh group each start: offsets are never committed, every replica reads all.
        group_id=f"routeiq-gateway-{role}-{uuid.uuid4().hex[:12]}",
        client_id=f"routeiq-gateway-{settings.replica_id}-{role}",
        overrides={"enable.partition.eof": True},
    )


def build_control(
    settings: GatewaySettings,
    model_file: ModelFile,
    *,
    engine: RoutingEngine,
    metrics: GatewayMetrics,
    resolver: SchemaIdResolver,
) -> ControlPlane:
    """The fleet's routing configuration: admin writes, state, and the reader that applies."""
    topics = ControlTopics(
        control=settings.control_topic,
        audit=settings.control_audit_topic,
        control_serde=AvroSerde.for_topic(
            ROUTING_CONFIG, settings.control_topic, resolver=resolver
        ),
        audit_serde=AvroSerde.for_topic(
            ROUTING_CONFIG, settings.control_audit_topic, resolver=resolver
        ),
    )
    resolve_now([topics.control_serde, topics.audit_serde], metrics.dependencies["registry"])
    writer = f"routeiq-gateway-{settings.replica_id}-control"
    # A transactional id of this process's own: the fleet's Redis lock already keeps writers
    # one at a time, and two replicas left with the same replica id must not fence each other.
    transactional_id = f"{writer}-{uuid.uuid4().hex[:8]}"
    producer = make_producer(
        settings.kafka, client_id=writer, overrides={"transactional.id": transactional_id}
    )
    redis_client = settings.redis.client(timeout_s=2.0)
    reader_done = threading.Event()
    plane = ControlPlane(
        fleet=settings.control_fleet,
        replica_id=settings.replica_id,
        engine=engine,
        # Every version of the fleet's configuration applies on top of the model file's.
        base=lambda: build_engine(model_file, engine.registry.holder),
        topics=topics,
        producer=producer,
        audit_consumer=lambda: log_consumer(settings, "control-audit"),
        redis_client=redis_client,
        metrics=metrics,
        caught_up=reader_done,
        wait_s=settings.control_wait_s,
    )
    dead_letters = reader_dead_letters(
        settings, CONTROL_CONSUMER, metrics=metrics, resolver=resolver
    )
    plane.reader = ControlReader(
        fleet=settings.control_fleet,
        consumer=log_consumer(settings, "control"),
        topic=settings.control_topic,
        serde=topics.control_serde,
        apply=plane.apply,
        dead_letters=dead_letters,
        recall_reader=lambda: recall_reader(settings.kafka, dead_letters.consumer),
        dependencies=metrics.dependencies,
        on_poison=lambda _exc: metrics.dead_letters.inc(),
        kafka_dependency="kafka-control",
        thread_name="control",
        caught_up=reader_done,
    )
    return plane


def reader_dead_letters(
    settings: GatewaySettings,
    consumer: str,
    *,
    metrics: GatewayMetrics,
    resolver: SchemaIdResolver,
) -> DeadLetterSink:
    """Where a log reader's poison records go (a producer of its own: the events producer
    purges to the spool when Kafka is down, dead letters must be acknowledged)."""
    serde = AvroSerde.for_topic(DEAD_LETTER, settings.deadletter_topic, resolver=resolver)
    resolve_now([serde], metrics.dependencies["registry"])
    return DeadLetterSink(
        producer=make_producer(
            settings.kafka, client_id=f"routeiq-gateway-{settings.replica_id}-dead-letters"
        ),
        serde=serde,
        topic=settings.deadletter_topic,
        consumer=consumer,
    )
