"""OpenTelemetry tracing setup: one call from a service's ``__main__``.

Without an OTLP endpoint spans are still created (so ids flow into events) but not exported.
"""

from __future__ import annotations

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
    if settings.otlp_endpoint:
        # Imported lazily: the exporter pulls in protobuf/requests only when it is used.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{settings.otlp_endpoint}/v1/traces"))
        )
    trace.set_tracer_provider(provider)
    return provider
