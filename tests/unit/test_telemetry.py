"""OTel setup gives every service a provider with its name, exporting only when configured,
in batches small enough that encoding one never stalls the process for long."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from routeiq.settings import TelemetrySettings
from routeiq.telemetry import configure_tracing
from support.httpd import serving


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


@pytest.fixture
def collector() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP endpoint; yields its URL and how many spans each export carried."""
    batches: list[int] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = ExportTraceServiceRequest.FromString(body)
            batches.append(
                sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
            )
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    with serving(Collector) as url:
        yield url, batches


def _export(settings: TelemetrySettings, spans: int) -> None:
    provider = configure_tracing(settings, service_name="routeiq-batches")
    tracer = provider.get_tracer("t")
    for _ in range(spans):
        with tracer.start_as_current_span("route"):
            pass
    assert provider.force_flush(10_000)
    provider.shutdown()


@pytest.mark.parametrize(
    ("ours", "standard", "largest"),
    [
        # The SDK's default (512) would send all 200 spans in one request.
        (None, None, 64),
        (None, "16", 16),  # OTEL_BSP_MAX_EXPORT_BATCH_SIZE when ours is not set
        (32, "16", 32),  # ours, when set, wins (as the endpoint does)
    ],
)
def test_exports_go_in_small_batches(
    collector: tuple[str, list[int]],
    monkeypatch: pytest.MonkeyPatch,
    ours: int | None,
    standard: str | None,
    largest: int,
) -> None:
    endpoint, batches = collector
    if standard is not None:
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", standard)
    extra = {} if ours is None else {"export_batch_size": ours}
    _export(TelemetrySettings(otlp_endpoint=endpoint, **extra), spans=200)
    assert sum(batches) == 200
    assert max(batches) == largest
