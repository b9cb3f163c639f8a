"""The gateway's Prometheus metrics, on a registry of its own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "routeiq_gateway_requests_total",
            "Completion requests by served model and HTTP status",
            ["model", "status"],
            registry=r,
        )
        self.routing_latency = Histogram(
            "routeiq_gateway_routing_seconds",
            "Time to decide a route (features + strategy)",
            ["strategy"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.embedding_latency = Histogram(
            "routeiq_gateway_embedding_seconds",
            "Time to embed a query (0 on a cache hit)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "routeiq_gateway_upstream_seconds",
            "Upstream call latency by model",
            ["model"],
            registry=r,
        )
        self.events = Counter(
            "routeiq_gateway_events_total",
            "Telemetry events by fate: produced, spooled, replayed, dropped",
            ["fate"],
            registry=r,
        )
        for fate in ("produced", "spooled", "replayed", "dropped"):
            self.events.labels(fate)
        self.spool_depth = Gauge(
            "routeiq_gateway_spool_depth", "Events waiting in the on-disk spool", registry=r
        )
        self.producer_state = Gauge(
            "routeiq_gateway_producer_state",
            "Kafka producer state: 0 up, 1 draining the spool, 2 down (spooling)",
            registry=r,
        )
        self.router_version = Gauge(
            "routeiq_gateway_router_version_info",
            "The active learned router version (value 1 on the active one)",
            ["name", "version", "router_type"],
            registry=r,
        )
        self.feedback = Counter(
            "routeiq_gateway_feedback_total", "Feedback records accepted", ["source"], registry=r
        )
        self.decisions = Counter(
            "routeiq_gateway_decisions_total",
            "Routing decisions by strategy, selected model and exploration",
            ["strategy", "model", "exploration"],
            registry=r,
        )
        # Model sync (rollout).
        self.sync_lock_wait = Histogram(
            "routeiq_gateway_sync_lock_wait_seconds",
            "Time waiting for the artifact lock",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.sync_contention = Counter(
            "routeiq_gateway_sync_lock_contention_total",
            "Syncs that found the artifact lock held by another replica",
            registry=r,
        )
        self.sync_downloads = Counter(
            "routeiq_gateway_sync_downloads_total", "Bundles downloaded from S3", registry=r
        )
        self.sync_bytes = Counter(
            "routeiq_gateway_sync_download_bytes_total", "Bytes downloaded from S3", registry=r
        )
        self.sync_failures = Counter(
            "routeiq_gateway_sync_failures_total",
            "Failed syncs or activations by stage",
            ["stage"],
            registry=r,
        )
        self.sync_unlocked = Counter(
            "routeiq_gateway_sync_without_lock_total",
            "Downloads done without the lock because Redis was unreachable",
            registry=r,
        )
        self.activations = Counter(
            "routeiq_gateway_activations_total",
            "Router activations by outcome (activated, rejected, rolled_back)",
            ["outcome"],
            registry=r,
        )
