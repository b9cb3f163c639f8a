"""The gateway's Prometheus metrics, on a registry of its own (one per app instance), and
the states of the dependencies it reports on that registry and on ``/health/ready``."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry
from routeiq.dependencies import Dependencies
from routeiq.metrics import MetricSet, counter, gauge, histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LOCK_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120)
EVENT_FATES = ("produced", "spooled", "replayed", "dropped")


class GatewayMetrics(MetricSet):
    # Serving.
    requests = counter(
        "routeiq_gateway_requests_total",
        "Completion requests by served model and HTTP status",
        *("model", "status"),
    )
    routing_latency = histogram(
        "routeiq_gateway_routing_seconds",
        "Time to decide a route (features + strategy)",
        "strategy",
        buckets=_LATENCY_BUCKETS,
    )
    embedding_latency = histogram(
        "routeiq_gateway_embedding_seconds",
        "Time to embed a query (0 on a cache hit)",
        buckets=_LATENCY_BUCKETS,
    )
    upstream_latency = histogram(
        "routeiq_gateway_upstream_seconds", "Upstream call latency by model", "model"
    )
    decisions = counter(
        "routeiq_gateway_decisions_total",
        "Routing decisions by strategy, selected model and exploration",
        *("strategy", "model", "exploration"),
    )
    feedback = counter("routeiq_gateway_feedback_total", "Feedback records accepted", "source")
    # Telemetry delivery.
    events = counter(
        "routeiq_gateway_events_total",
        "Telemetry events by fate: produced, spooled, replayed, dropped",
        "fate",
    )
    spool_depth = gauge("routeiq_gateway_spool_depth", "Events waiting in the on-disk spool")
    producer_state = gauge(
        "routeiq_gateway_producer_state",
        "Kafka producer state: 0 up, 1 draining the spool, 2 down (spooling)",
    )
    # Model sync (rollout).
    router_version = gauge(
        "routeiq_gateway_router_version_info",
        "The active learned router version (value 1 on the active one)",
        *("name", "version", "router_type"),
    )
    sync_lock_wait = histogram(
        "routeiq_gateway_sync_lock_wait_seconds",
        "Time waiting for the artifact lock",
        buckets=_LOCK_WAIT_BUCKETS,
    )
    sync_contention = counter(
        "routeiq_gateway_sync_lock_contention_total",
        "Syncs that found the artifact lock held by another replica",
    )
    sync_downloads = counter("routeiq_gateway_sync_downloads_total", "Bundles downloaded from S3")
    sync_bytes = counter("routeiq_gateway_sync_download_bytes_total", "Bytes downloaded from S3")
    dead_letters = counter(
        "routeiq_gateway_dead_letters_total",
        "Announcement records this replica could not decode or validate, dead-lettered",
    )
    sync_failures = counter(
        "routeiq_gateway_sync_failures_total", "Failed syncs or activations by stage", "stage"
    )
    sync_unlocked = counter(
        "routeiq_gateway_sync_without_lock_total",
        "Downloads done without the lock because Redis was unreachable",
    )
    activations = counter(
        "routeiq_gateway_activations_total",
        "Router activations by outcome (activated, rejected, rolled_back)",
        "outcome",
    )
    shadow = counter(
        "routeiq_gateway_shadow_total",
        "Shadow sampling by fate (queued, dropped_full, judged, unjudged, over_budget, "
        "budget_unavailable, shadow_failed, error)",
        "fate",
    )

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        # Kept with the metrics: every part that counts also reports the dependencies it uses
        # (named on first use, up until a failure says otherwise), and their gauge
        # (``routeiq_dependency_up``) lives on this registry.
        self.dependencies = Dependencies(
            log=logging.getLogger("routeiq_gateway.dependencies"), registry=self.registry
        )
        for fate in EVENT_FATES:
            self.events.labels(fate)  # every fate exported from the start, at 0
