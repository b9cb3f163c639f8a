"""Prometheus metrics of the upstream, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from routeiq.metrics import MetricSet, counter, gauge

# Label value when the request failed before its model or prompt was resolved.
UNRESOLVED = "-"


class UpstreamMetrics(MetricSet):
    """Requests by model, known-prompt flag and HTTP status; the index size per dataset.

    ``model`` is always a served (canonical) model or ``-``: a requested name that is not
    served is never a label value, so clients cannot grow the series without bound.
    """

    requests = counter(
        "routeiq_upstream_requests",
        "Chat completion requests answered, by model, known prompt and HTTP status",
        "model",
        "known",
        "status",
    )
    indexed_prompts = gauge(
        "routeiq_upstream_indexed_prompts",
        "Prompts each loaded dataset contributes to the index",
        "dataset",
    )

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)

    def observe(self, *, model: str, known: str, status: int) -> None:
        """Count one answered request."""
        self.requests.labels(model, known, str(status)).inc()
