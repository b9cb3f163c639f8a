"""Prometheus metrics of the upstream, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

# Label value when the request failed before its model or prompt was resolved.
UNRESOLVED = "-"


class UpstreamMetrics:
    """Requests by model, known-prompt flag and HTTP status; the index size per dataset.

    ``model`` is always a served (canonical) model or ``-``: a requested name that is not
    served is never a label value, so clients cannot grow the series without bound.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "routeiq_upstream_requests",
            "Chat completion requests answered, by model, known prompt and HTTP status",
            ["model", "known", "status"],
            registry=self.registry,
        )
        self.indexed_prompts = Gauge(
            "routeiq_upstream_indexed_prompts",
            "Prompts each loaded dataset contributes to the index",
            ["dataset"],
            registry=self.registry,
        )

    def observe(self, *, model: str, known: str, status: int) -> None:
        """Count one answered request."""
        self.requests.labels(model, known, str(status)).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
