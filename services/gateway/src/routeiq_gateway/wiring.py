"""Builders for the gateway's parts: the routing engine, the features, telemetry publishing
and model sync. ``__main__`` calls them in order; tests and benchmarks reuse them.

The gateway starts and serves even when Kafka, the registry, S3, Redis or MLflow are down:
events spool to disk, model sync retries in the background, the default strategy serves.
Each lost dependency is logged once, reminded about rarely and shown on ``/health/ready``
(``GatewayMetrics.dependencies``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, Producer
from routeiq.contracts.catalog import (
    FEEDBACK,
    ROUTER_DECISION,
)
from routeiq.contracts.serde import AvroSerde, SchemaIdResolver
from routeiq.dependencies import Dependency
from routeiq.errors import ConfigError, RouteIQError
from routeiq.kafka import make_producer
from routeiq.routing.admin import rollout_from
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
from routeiq.routing.featurizer import FeatureError, Featurizer, minilm_pipeline, read_pipeline
from routeiq.routing.strategies import BundleHolder
from starlette.applications import Starlette

from routeiq_gateway.api.app import create_app
from routeiq_gateway.budgets import Budgets
from routeiq_gateway.config import GatewaySettings, ModelFile
from routeiq_gateway.features import FeatureService
from routeiq_gateway.gateway import Gateway
from routeiq_gateway.ids import DecisionIds
from routeiq_gateway.keys import Access, DecisionOwners, KeyStore
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.publisher import EventPublisher
from routeiq_gateway.shadow import shadow_config
from routeiq_gateway.spool import Spool
from routeiq_gateway.sync import (
    ControlPlane,
    ModelSync,
)
from routeiq_gateway.upstream import Upstream, build_router

log = logging.getLogger("routeiq_gateway")

BUILTIN_STRATEGIES = ("random", "cheapest", "strongest")


def build_engine(model_file: ModelFile, holder: BundleHolder) -> RoutingEngine:
    """Built-in strategies plus the file's, then the routing configuration, all validated."""
    registry = StrategyRegistry(holder=holder)
    for kind in BUILTIN_STRATEGIES:
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
        rollout=rollout_from(rq.rollout.model_dump()) if rq.rollout is not None else None,
        kill_switch=rq.kill_switch,
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


def build_features(
    settings: GatewaySettings, model_file: ModelFile, engine: RoutingEngine
) -> FeatureService | None:
    """The feature service, when anything needs features: logging embeddings, a followed
    learned router, or a registered strategy that routes on them."""
    registry = engine.registry
    needed = (
        settings.include_embedding
        or (settings.sync_enabled and bool(model_file.routeiq.router_name))
        or any(registry.get(n).needs_embedding for n in registry.names())
    )
    if not needed:
        return None
    return FeatureService(default_features(settings), cache_size=settings.embedding_cache_size)


def telemetry_serdes(
    settings: GatewaySettings, resolver: SchemaIdResolver, *, registry: Dependency
) -> tuple[AvroSerde, AvroSerde]:
    """The decision and feedback serdes, their schema ids resolved now when the registry
    answers (the disk cache covers a registry that is down)."""
    serdes = (
        AvroSerde.for_topic(ROUTER_DECISION, settings.decisions_topic, resolver=resolver),
        AvroSerde.for_topic(FEEDBACK, settings.feedback_topic, resolver=resolver),
    )
    resolve_now(serdes, registry)
    return serdes


def resolve_now(serdes: Iterable[AvroSerde], registry: Dependency) -> None:
    """Ask for each serde's schema id now, so a registry that goes down later is covered by
    the disk cache; a registry that does not answer yet is reported, not fatal."""
    for serde in serdes:
        try:
            _ = serde.schema_id
        except RouteIQError as exc:
            registry.failed(f"schema id for {serde.subject} not resolved yet: {exc}")
            return
    registry.recovered()


def build_gateway(
    settings: GatewaySettings,
    *,
    model_file: ModelFile,
    engine: RoutingEngine,
    features: FeatureService | None,
    metrics: GatewayMetrics,
    publisher: EventPublisher | None,
    resolver: SchemaIdResolver,
) -> Gateway:
    """The gateway: the engine's holder, the upstream router and, with ``publisher``, the
    telemetry serdes."""
    # LiteLLM's proxy exports these before it reads model_list: os.environ/ references in
    # litellm_params resolve against them.
    model_file.apply_environment()
    decision_serde, feedback_serde = (
        telemetry_serdes(settings, resolver, registry=metrics.dependencies["registry"])
        if publisher is not None
        else (None, None)
    )
    shadow = shadow_config(settings, model_file)
    inline = shadow is not None and shadow.worker is None
    return Gateway(
        model_file=model_file,
        engine=engine,
        holder=engine.registry.holder,
        upstream=Upstream(router=build_router(model_file), model_file=model_file),
        embeddings=features,
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
        query_key=settings.query_key.get_secret_value().encode() if settings.query_key else None,
        shadow_config=shadow,
        # Shadow jobs run off the request path: a slower Redis only delays them. (A worker
        # process has its own client.)
        shadow_redis=settings.redis.async_client(timeout_s=2.0) if inline else None,
    )


def build_publisher(settings: GatewaySettings, metrics: GatewayMetrics) -> EventPublisher:
    """Kafka with the disk spool behind it (the publisher starts the producer's thread)."""

    def producer_factory(on_error: Callable[[KafkaError], None]) -> Producer:
        return make_producer(
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

    spool = Spool(
        settings.spool_dir / "events",
        max_bytes=settings.spool_max_bytes,
        fsync_interval_s=settings.spool_fsync_ms / 1000.0,
    )
    return EventPublisher(producer_factory=producer_factory, spool=spool, metrics=metrics)


def build_access(
    settings: GatewaySettings, model_file: ModelFile, metrics: GatewayMetrics
) -> tuple[Access, Budgets | None]:
    """Keys (the model file's master key, virtual keys in Redis when enabled) and the spend
    ledger with the file's team budgets (when either needs Redis), on one asyncio Redis
    client for the request path."""
    needs_redis = settings.virtual_keys or bool(model_file.routeiq.budgets)
    if not needs_redis:
        return Access(master_key=model_file.master_key), None
    # Short timeouts: these calls sit on the request path, and budgets fail open.
    client = settings.redis.async_client(timeout_s=0.5)
    up = metrics.dependencies["redis"]
    prefix = settings.keys_prefix
    store = owners = None
    if settings.virtual_keys:
        fresh, stale = settings.key_cache_s, settings.key_stale_s
        store = KeyStore(redis=client, dependency=up, prefix=prefix, cache_s=fresh, stale_s=stale)
        ttl_s = settings.decision_owner_ttl_s
        owners = DecisionOwners(redis=client, dependency=up, prefix=prefix, ttl_s=ttl_s)
    access = Access(master_key=model_file.master_key, store=store, owners=owners)
    # Spend is counted for every team once Redis is in use, limits or not: the report shows it.
    specs = dict(model_file.routeiq.budgets)
    budgets = Budgets(redis=client, dependency=up, specs=specs, prefix=prefix)
    return access, budgets


def build_app(
    settings: GatewaySettings,
    gateway: Gateway,
    *,
    model_file: ModelFile,
    metrics: GatewayMetrics,
    sync: ModelSync | None,
    control: ControlPlane | None = None,
) -> Starlette:
    """The HTTP app with its keys and spend ledger (``build_access``)."""
    access, budgets = build_access(settings, model_file, metrics)
    return create_app(
        gateway,
        admin_key=settings.admin_key.get_secret_value(),
        max_body_bytes=settings.max_body_bytes,
        sync=sync,
        started_at=time.time(),
        access=access,
        budgets=budgets,
        control=control,
    )
