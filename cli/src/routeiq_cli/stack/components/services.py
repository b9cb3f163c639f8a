"""RouteIQ's own services on the stack: the offline upstream, the gateways, the labeler, the
trainer and analytics, each pointed at the stack's infrastructure."""

from __future__ import annotations

from routeiq_cli.stack.components.base import Component, ServiceSpec, prepare_dir, python_service
from routeiq_cli.stack.components.gateway import gateway_components, prepare_features
from routeiq_cli.stack.secrets import StackSecrets, load_or_create
from routeiq_cli.stack.settings import StackSettings

UPSTREAM = ServiceSpec("upstream", "Offline LLM upstream", "routeiq_upstream", "ROUTEIQ_UPSTREAM_")
LABELER = ServiceSpec(
    "labeler", "Labeler (Faust)", "routeiq_labeler", "ROUTEIQ_LABELER_", ("WEB_HOST", "WEB_PORT")
)
TRAINER = ServiceSpec(
    "trainer", "Trainer", "routeiq_trainer", "ROUTEIQ_TRAINER_", ("HOST", "HEALTH_PORT")
)
ANALYTICS = ServiceSpec("analytics", "Analytics", "routeiq_analytics", "ROUTEIQ_ANALYTICS_")
# Kafka for their topics, the registry for their serdes, S3 for shards and bundles.
STREAM_CLIENTS = ("kafka", "registry", "s3")


def _upstream(settings: StackSettings) -> Component:
    latency = {"ROUTEIQ_UPSTREAM_LATENCY_MS": str(settings.upstream_latency_ms)}
    return python_service(
        settings, UPSTREAM, settings.upstream_port, environment=latency, endpoint_path="/v1"
    )


def _labeler(settings: StackSettings) -> Component:
    environment = {
        "ROUTEIQ_LABELER_SHARDS_BUCKET": settings.shards_bucket,
        "ROUTEIQ_LABELER_DATA_DIR": str(settings.state / "labeler"),
        "ROUTEIQ_LABELER_WINDOW_SIZE_S": str(settings.labeler_window_s),
        "ROUTEIQ_LABELER_ALLOWED_LATENESS_S": str(settings.labeler_lateness_s),
        "ROUTEIQ_LABELER_FEEDBACK_TTL_S": str(settings.labeler_feedback_ttl_s),
        "ROUTEIQ_LABELER_IDLE_TIMEOUT_S": "10",
        # Only graded requests train: the demo's held-out traffic posts no feedback.
        "ROUTEIQ_LABELER_QUALITY_SOURCE": "feedback",
        "ROUTEIQ_LABELER_RETRAIN_THRESHOLD": str(settings.retrain_threshold),
        "ROUTEIQ_LABELER_RETRAIN_MODEL_NAME": settings.router_name,
        "ROUTEIQ_LABELER_RETRAIN_ROUTER_TYPES": settings.retrain_router_types,
    }
    prepare = prepare_dir(settings.state / "labeler")
    return python_service(
        settings,
        LABELER,
        settings.labeler_port,
        clients=STREAM_CLIENTS,
        environment=environment,
        prepare=prepare,
    )


def _trainer(settings: StackSettings, keys: StackSecrets) -> Component:
    cache = settings.state / "trainer-cache"

    def prepare_trainer() -> None:
        cache.mkdir(parents=True, exist_ok=True)
        prepare_features(settings)

    environment = {
        "ROUTEIQ_TRAINER_MLFLOW_TRACKING_URI": settings.mlflow_url,
        "ROUTEIQ_TRAINER_SHARDS_BUCKET": settings.shards_bucket,
        "ROUTEIQ_TRAINER_MODELS_BUCKET": settings.models_bucket,
        "ROUTEIQ_TRAINER_SIGNING_ALGORITHM": "ed25519",
        "ROUTEIQ_TRAINER_SIGNING_KEY": keys.signing_private,
        "ROUTEIQ_TRAINER_QUERY_KEY": keys.query_key,
        "ROUTEIQ_TRAINER_JAEGER_URL": settings.jaeger_url,
        "ROUTEIQ_TRAINER_CACHE_DIR": str(cache),
        # The same pipeline the gateways log: rows of any other are not trained on.
        "ROUTEIQ_TRAINER_FEATURES": settings.features,
        "ROUTEIQ_TRAINER_FEATURES_DIR": str(settings.features_dir),
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    return python_service(
        settings,
        TRAINER,
        settings.trainer_port,
        clients=STREAM_CLIENTS,
        environment=environment,
        prepare=prepare_trainer,
    )


def _analytics(settings: StackSettings) -> Component:
    # With 9 candidates there is no fixed pair: the most expensive and the cheapest of each
    # window stand in for strong and weak.
    pair = (
        {"ROUTEIQ_ANALYTICS_STRONG_MODEL": "auto", "ROUTEIQ_ANALYTICS_WEAK_MODEL": "auto"}
        if settings.candidates == "llmrouter"
        else {}
    )
    clients = ("kafka", "registry")
    return python_service(
        settings, ANALYTICS, settings.analytics_port, clients=clients, environment=pair
    )


def service_components(settings: StackSettings) -> list[Component]:
    """RouteIQ's own services, in start order (the upstream before the gateways)."""
    keys = load_or_create(settings)
    return [
        _upstream(settings),
        *gateway_components(settings, keys),
        _labeler(settings),
        _trainer(settings, keys),
        _analytics(settings),
    ]
