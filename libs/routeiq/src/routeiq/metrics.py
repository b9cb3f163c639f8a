"""Prometheus metrics, declared one line each on a registry of the service's own.

Every service keeps its metrics on a private ``CollectorRegistry`` (tests build many
services in one process; the global registry would refuse the second). ``MetricSet`` binds
that registry once so a declaration names only what differs: name, help and labels.

    class WorkerMetrics(MetricSet):
        def __init__(self) -> None:
            super().__init__()
            self.records = self.counter("routeiq_x_records_total", "Records read", "outcome")
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Prometheus' text exposition format, as ``generate_latest`` writes it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricSet:
    """A service's metrics and the registry they live on."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        *labels: str,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def render(self) -> bytes:
        """The registry in the text exposition format (``GET /metrics``)."""
        return generate_latest(self.registry)
