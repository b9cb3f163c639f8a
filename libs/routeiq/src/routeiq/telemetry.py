"""OpenTelemetry tracing setup: one call from a service's ``__main__``.

Without an OTLP endpoint spans are still created (so ids flow into events) but not exported.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from routeiq.settings import TelemetrySettings


def configure_tracing(
    settings: TelemetrySettings, *, service_name: str, service_version: str = "0.1.0"
) -> TracerProvider:
    """Install a global ``TracerProvider`` for the service and return it (for shutdown)."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name, SERVICE_VERSION: service_version}),
        sampler=ParentBasedTraceIdRatio(settings.sample_ratio),
    )
    # OpenTelemetry's own convention: the standard OTEL_EXPORTER_OTLP_* variables configure
    # the exporter (the SDK reads them); our settings' endpoint, when given, takes precedence.
    standard = (
        any(
            os.environ.get(name)
            for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        and os.environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"
    )
    if settings.otlp_endpoint or standard:
        # Imported lazily: the exporter pulls in protobuf/requests only when it is used.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = (
            OTLPSpanExporter(endpoint=f"{settings.otlp_endpoint}/v1/traces")
            if settings.otlp_endpoint
            else OTLPSpanExporter()
        )
        provider.add_span_processor(
            BatchSpanProcessor(exporter, max_export_batch_size=_export_batch_size(settings))
        )
    trace.set_tracer_provider(provider)
    return provider


def _export_batch_size(settings: TelemetrySettings) -> int | None:
    """Ours when set or when the standard variable is not; None lets the SDK read
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE."""
    if "export_batch_size" in settings.model_fields_set:
        return settings.export_batch_size
    return None if os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") else settings.export_batch_size


# Span attributes of a routing decision. The gateway sets them on its "routeiq.route" span;
# `routeiq backfill jaeger` reads them back from traces, so both sides use these names.
ROUTE_SPAN_NAME = "routeiq.route"
ATTR_PREFIX = "routeiq."
ATTR_DECISION_ID = "routeiq.decision_id"
ATTR_STRATEGY = "routeiq.strategy"
ATTR_STRATEGY_VERSION = "routeiq.strategy_version"
ATTR_ROUTER_VERSION = "routeiq.router_version"
ATTR_REQUESTED_MODEL = "routeiq.requested_model"
ATTR_SELECTED_MODEL = "routeiq.selected_model"
ATTR_SELECTION_REASON = "routeiq.selection_reason"
ATTR_CANDIDATES = "routeiq.candidates"  # string array of model names
ATTR_PROPENSITIES = "routeiq.propensities"  # float array, aligned with candidates
ATTR_EXPLORATION = "routeiq.exploration"
ATTR_AB_ARM = "routeiq.ab_arm"
ATTR_DOMAIN = "routeiq.domain"
ATTR_USER_HASH = "routeiq.user_hash"
ATTR_TEAM_ID = "routeiq.team_id"
ATTR_QUERY_LENGTH = "routeiq.query_length"
ATTR_ROUTING_MS = "routeiq.routing_latency_ms"
ATTR_EMBEDDING_MS = "routeiq.embedding_ms"
ATTR_STRATEGY_MS = "routeiq.strategy_ms"
ATTR_TOTAL_MS = "routeiq.total_ms"
ATTR_UPSTREAM_MS = "routeiq.upstream_latency_ms"
ATTR_STATUS = "routeiq.status"  # SUCCESS | ERROR | TIMEOUT | CANCELLED
ATTR_INPUT_TOKENS = "routeiq.input_tokens"
ATTR_OUTPUT_TOKENS = "routeiq.output_tokens"
ATTR_COST_USD = "routeiq.cost_usd"
ATTR_FALLBACK_USED = "routeiq.fallback_used"
ATTR_ATTEMPTED = "routeiq.attempted_deployments"  # string array

# The decision itself, as the telemetry contract defines it: a span event on the routing span
# whose payload attribute is the RouterDecision record as JSON (the record published to Kafka,
# without the query embedding). `routeiq backfill jaeger` and the trainer's `prepare_data`
# prefer it to the attributes above.
DECISION_EVENT_NAME = "routeiq.router_decision.v1"
ATTR_DECISION_PAYLOAD = "routeiq.router_decision.payload"
# When the gateway publishes embeddings (its include_embedding setting), the same event also
# carries the query embedding, as base64 of little-endian float32 (a quarter of the size of the
# floats as JSON text), and the feature pipeline that made it, so traces alone can be labelled
# into training shards. Kept out of the payload: the contract's JSON stays the contract's.
ATTR_DECISION_EMBEDDING = "routeiq.router_decision.embedding"
ATTR_DECISION_EMBEDDING_MODEL = "routeiq.router_decision.embedding_model"
