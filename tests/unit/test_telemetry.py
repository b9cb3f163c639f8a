"""OTel setup gives every service a provider with its name, exporting only when configured."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from routeiq.settings import TelemetrySettings
from routeiq.telemetry import configure_tracing


def test_spans_carry_the_service_name_and_valid_ids() -> None:
    provider = configure_tracing(TelemetrySettings(), service_name="routeiq-test")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("route") as span:
        span.set_attribute("routeiq.strategy", "knn")
        context = span.get_span_context()
    (finished,) = exporter.get_finished_spans()
    assert finished.resource.attributes["service.name"] == "routeiq-test"
    assert finished.attributes["routeiq.strategy"] == "knn"
    assert context.trace_id != 0
    assert format(context.trace_id, "032x") == format(finished.context.trace_id, "032x")


def test_sampling_ratio_zero_records_nothing() -> None:
    provider = configure_tracing(TelemetrySettings(sample_ratio=0.0), service_name="quiet")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("route"):
        pass
    assert exporter.get_finished_spans() == ()
