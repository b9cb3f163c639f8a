"""Composition root: settings + model file → routing engine, upstream, telemetry, model sync → app.

Exit codes: 2 invalid configuration (the reason is printed), 1 the server failed, 0 shutdown.
The gateway starts and serves even when Kafka, the registry, S3, Redis or MLflow are down:
events spool to disk, model sync retries in the background, the default strategy serves.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path

# litellm fetches a model cost map over the network at import time unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# One decision's matrix-vector product is too small to split across threads, and BLAS
# worker threads spinning beside the event loop, Kafka's and model sync's threads cost more
# than they give (measured: bench/gateway.py). Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import redis
import uvicorn
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.catalog import FEEDBACK, MODEL_ANNOUNCEMENT, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, PersistentResolver, RegistryResolver
from routeiq.errors import ConfigError, RouteIQError
from routeiq.kafka import make_consumer, producer_config
from routeiq.routing.bundle import BundleError, verifier_from
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
from routeiq.routing.featurizer import FeatureError, Featurizer, minilm_pipeline, read_pipeline
from routeiq.routing.strategies import BundleHolder
from routeiq.storage import ArtifactStore, make_minio
from routeiq.telemetry import configure_tracing

from routeiq_gateway.api.app import create_app
from routeiq_gateway.config import GatewaySettings, ModelFile, load_model_file
from routeiq_gateway.core import Gateway
from routeiq_gateway.features import FeatureService
from routeiq_gateway.ids import DecisionIds
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.publisher import EventPublisher
from routeiq_gateway.spool import Spool
from routeiq_gateway.sync import AuditTrail, ModelSync
from routeiq_gateway.upstream import Upstream, build_router

log = logging.getLogger("routeiq_gateway")


def build_engine(model_file: ModelFile, holder: BundleHolder) -> RoutingEngine:
    """Built-in strategies plus the file's, then the routing configuration, all validated."""
    registry = StrategyRegistry(holder=holder)
    for kind in ("random", "cheapest", "strongest"):
        registry.register(kind, kind)
    rq = model_file.routeiq
    # Learned strategies name a fallback: register everything else first.
    for spec in sorted(rq.strategies, key=lambda s: s.kind == "learned"):
        registry.register(spec.name, spec.kind, spec.params)
    config = RoutingConfig(
        default=rq.default_strategy,
        ab=dict(rq.ab),
        domain_overrides=dict(rq.domain_overrides),
        epsilon=rq.epsilon,
    )
    return RoutingEngine(registry, config)


def default_features(settings: GatewaySettings) -> Featurizer:
    """The pipeline used before a bundle brings its own (``ConfigError`` if unreadable)."""
    if settings.features_dir is None:
        return minilm_pipeline()
    try:
        return read_pipeline(settings.features_dir)
    except FeatureError as exc:
        raise ConfigError(f"ROUTEIQ_GATEWAY_FEATURES_DIR: {exc}") from exc


def build(
    settings: GatewaySettings,
) -> tuple[uvicorn.Server, EventPublisher | None, ModelSync | None]:
    model_file = load_model_file(settings.config_path)
    holder = BundleHolder()
    engine = build_engine(model_file, holder)
    metrics = GatewayMetrics()
    needs_embedding = (
        settings.include_embedding
        or (settings.sync_enabled and bool(model_file.routeiq.router_name))
        or any(engine.registry.get(n).needs_embedding for n in engine.registry.names())
    )
    embeddings = (
        FeatureService(default_features(settings), cache_size=settings.embedding_cache_size)
        if needs_embedding
        else None
    )

    registry_client = SchemaRegistryClient(settings.registry.client_config())
    resolver = PersistentResolver(
        RegistryResolver(registry_client), settings.spool_dir / "schema-ids.json"
    )
    publisher = decision_serde = feedback_serde = None
    if settings.telemetry_enabled:
        decision_serde = AvroSerde.for_contract(
            ROUTER_DECISION, subject=f"{settings.decisions_topic}-value", resolver=resolver
        )
        feedback_serde = AvroSerde.for_contract(
            FEEDBACK, subject=f"{settings.feedback_topic}-value", resolver=resolver
        )
        for serde in (decision_serde, feedback_serde):
            try:
                _ = serde.schema_id  # resolve now; the disk cache covers a down registry
            except RouteIQError as exc:
                log.warning("schema id for %s not resolved yet: %s", serde.subject, exc)

        def producer_factory(on_error: object) -> Producer:
            config = producer_config(
                settings.kafka,
                client_id=f"routeiq-gateway-{settings.replica_id}",
                overrides={
                    # In-flight batches wait for the broker (idempotent retries, no dups);
                    # queued ones are purged to the spool when all brokers are down.
                    "message.timeout.ms": 0,
                    "reconnect.backoff.max.ms": 1000,
                    "queue.buffering.max.messages": 200_000,
                    "error_cb": on_error,
                },
            )
            return Producer(config)

        spool = Spool(
            settings.spool_dir / "events",
            max_bytes=settings.spool_max_bytes,
            fsync_interval_s=settings.spool_fsync_ms / 1000.0,
        )
        publisher = EventPublisher(producer_factory=producer_factory, spool=spool, metrics=metrics)

    upstream = Upstream(router=build_router(model_file), model_file=model_file)
    gateway = Gateway(
        model_file=model_file,
        engine=engine,
        holder=holder,
        upstream=upstream,
        embeddings=embeddings,
        publisher=publisher,
        decision_serde=decision_serde,
        feedback_serde=feedback_serde,
        decisions_topic=settings.decisions_topic,
        feedback_topic=settings.feedback_topic,
        ids=DecisionIds(
            settings.decision_key.get_secret_value().encode(), ttl_s=settings.decision_ttl_s
        ),
        metrics=metrics,
        user_salt=settings.user_salt.get_secret_value().encode(),
        include_embedding=settings.include_embedding,
    )

    sync = None
    router_name = model_file.routeiq.router_name
    if settings.sync_enabled and router_name:
        if settings.verify_key is None:
            raise ConfigError(
                "ROUTEIQ_GATEWAY_VERIFY_KEY is required to follow router "
                f"{router_name!r} (bundles are never used unverified)"
            )
        try:
            verifier = verifier_from(
                settings.verify_algorithm, settings.verify_key.get_secret_value()
            )
        except BundleError as exc:
            raise ConfigError(f"ROUTEIQ_GATEWAY_VERIFY_KEY: {exc}") from exc
        assert embeddings is not None  # a synced router needs features
        features = embeddings
        redis_client = redis.Redis.from_url(
            settings.redis.url,
            password=settings.redis.password.get_secret_value()
            if settings.redis.password
            else None,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
        )
        sync = ModelSync(
            name=router_name,
            replica_id=settings.replica_id,
            consumer=make_consumer(
                settings.kafka,
                group_id=f"routeiq-gateway-sync-{uuid.uuid4().hex[:12]}",
                client_id=f"routeiq-gateway-{settings.replica_id}-sync",
                overrides={"enable.partition.eof": True},
            ),
            topic=settings.announcements_topic,
            serde=AvroSerde.for_contract(
                MODEL_ANNOUNCEMENT,
                subject=f"{settings.announcements_topic}-value",
                resolver=resolver,
            ),
            store=ArtifactStore(make_minio(settings.s3)),
            redis_client=redis_client,
            cache_dir=settings.model_cache_dir,
            cache_volume=settings.cache_volume,
            verifier=verifier,
            holder=holder,
            featurize=features.featurize_many,
            metrics=metrics,
            audit=AuditTrail(
                settings.audit_log,
                redis_client=redis_client,
                name=router_name,
                replica=settings.replica_id,
            ),
            lock_ttl_s=settings.lock_ttl_s,
            lock_wait_s=settings.lock_wait_s,
            redis_retries=settings.redis_retries,
            keep_versions=settings.keep_versions,
        )

    app = create_app(
        gateway,
        admin_key=settings.admin_key.get_secret_value(),
        max_body_bytes=settings.max_body_bytes,
        sync=sync,
        started_at=time.time(),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level="warning", access_log=False
        )
    )
    return server, publisher, sync


def main() -> int:
    try:
        settings = GatewaySettings.load()
    except ConfigError as exc:
        print(f"routeiq-gateway: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # LiteLLM logs every custom-priced model at WARNING and each call at INFO.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        provider = configure_tracing(settings.telemetry, service_name="routeiq-gateway")
        server, publisher, sync = build(settings)
    except ConfigError as exc:
        print(f"routeiq-gateway: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if publisher is not None:
        publisher.start()
    if sync is not None:
        sync.start()
    log.info(
        "gateway %s on http://%s:%d (model file %s)",
        settings.replica_id,
        settings.host,
        settings.port,
        Path(settings.config_path).resolve(),
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; with a no-op handler
    # installed first, that no longer kills the process before the spool is flushed below.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    try:
        server.run()
    finally:
        if sync is not None:
            sync.stop()
        if publisher is not None:
            publisher.close()
        provider.shutdown()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
