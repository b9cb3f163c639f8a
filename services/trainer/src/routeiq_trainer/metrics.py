"""Prometheus metrics of the trainer, in a registry of their own (one per worker instance)."""

from __future__ import annotations

from routeiq.metrics import CONTENT_TYPE, MetricSet, counter, gauge, histogram

__all__ = ["CONTENT_TYPE", "TrainerMetrics"]


class TrainerMetrics(MetricSet):
    """Counters and timings the worker updates; ``render()`` is the ``/metrics`` body."""

    requests = counter(
        "routeiq_trainer_requests",
        "Retrain requests handled, by outcome (trained, resumed, duplicate, failed)",
        "outcome",
    )
    versions = counter("routeiq_trainer_versions_registered", "Model versions registered in MLflow")
    announcements = counter(
        "routeiq_trainer_announcements",
        "Model announcements produced, by action (PROMOTE, ROLLBACK)",
        "action",
    )
    gate_held = counter("routeiq_trainer_gate_held", "Challengers the gate did not promote")
    training_seconds = histogram(
        "routeiq_trainer_training_seconds",
        "Wall time of one router fit, by router type",
        "router_type",
        buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    )
    failures = counter(
        "routeiq_trainer_failures", "Failed attempts at a request, by error type", "error_type"
    )
    dead_letters = counter("routeiq_trainer_dead_letters", "Requests sent to the dead-letter topic")
    # Dead letters for records that never became a request (undecodable or invalid);
    # ``dead_letters`` also counts requests that could not be trained.
    poison = counter(
        "routeiq_trainer_poison_records",
        "Poison records dead-lettered, by error type",
        "error_type",
    )
    busy = gauge("routeiq_trainer_busy", "1 while a request is being processed")
