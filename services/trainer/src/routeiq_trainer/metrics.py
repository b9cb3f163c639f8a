"""Prometheus metrics of the trainer, in a registry of their own (one per worker instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class TrainerMetrics:
    """Counters and timings the worker updates; ``render()`` is the ``/metrics`` body."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "routeiq_trainer_requests",
            "Retrain requests handled, by outcome (trained, resumed, duplicate, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.versions = Counter(
            "routeiq_trainer_versions_registered",
            "Model versions registered in MLflow",
            registry=self.registry,
        )
        self.announcements = Counter(
            "routeiq_trainer_announcements",
            "Model announcements produced, by action (PROMOTE, ROLLBACK)",
            ["action"],
            registry=self.registry,
        )
        self.gate_held = Counter(
            "routeiq_trainer_gate_held",
            "Challengers the gate did not promote",
            registry=self.registry,
        )
        self.training_seconds = Histogram(
            "routeiq_trainer_training_seconds",
            "Wall time of one router fit, by router type",
            ["router_type"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.failures = Counter(
            "routeiq_trainer_failures",
            "Failed attempts at a request, by error type",
            ["error_type"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "routeiq_trainer_dead_letters",
            "Requests sent to the dead-letter topic",
            registry=self.registry,
        )
        self.busy = Gauge(
            "routeiq_trainer_busy", "1 while a request is being processed", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
