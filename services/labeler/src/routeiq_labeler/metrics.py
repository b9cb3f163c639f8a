"""Prometheus metrics of the labeler, in a registry of their own (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class LabelerMetrics:
    """Counters and gauges the worker updates; one instance per process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "routeiq_labeler_events_in_total",
            "Records consumed, by kind (decision, feedback).",
            ["kind"],
            registry=r,
        )
        self.duplicates = Counter(
            "routeiq_labeler_duplicates_total",
            "Records already held in state (replays after a restart), by kind.",
            ["kind"],
            registry=r,
        )
        self.labeled = Counter(
            "routeiq_labeler_labeled_total",
            "Decisions labelled and written to a shard, by quality source.",
            ["quality_source"],
            registry=r,
        )
        self.shards_written = Counter(
            "routeiq_labeler_shards_written_total",
            "Shard objects written (regular or late).",
            ["kind"],
            registry=r,
        )
        self.shard_rows = Counter(
            "routeiq_labeler_shard_rows_total",
            "Rows newly added to shard objects, by kind (regular or late).",
            ["kind"],
            registry=r,
        )
        self.shard_write_errors = Counter(
            "routeiq_labeler_shard_write_errors_total",
            "Shard writes that failed (retried at the next tick).",
            registry=r,
        )
        self.late = Counter(
            "routeiq_labeler_late_events_total",
            "Decisions that arrived after their window closed (they go to the late shard).",
            registry=r,
        )
        self.late_replays = Counter(
            "routeiq_labeler_late_replays_total",
            "Late rows dropped because the window's regular shard already held them.",
            registry=r,
        )
        self.dead_lettered = Counter(
            "routeiq_labeler_dead_lettered_total",
            "Records sent to the dead-letter topic, by source kind and error type.",
            ["kind", "error_type"],
            registry=r,
        )
        self.feedback_unmatched = Counter(
            "routeiq_labeler_feedback_unmatched_total",
            "Feedback dropped after waiting for a decision that never came or was written.",
            registry=r,
        )
        self.retrain_requests = Counter(
            "routeiq_labeler_retrain_requests_total",
            "RetrainRequest events published, by reason.",
            ["reason"],
            registry=r,
        )
        self.examples_since_request = Gauge(
            "routeiq_labeler_examples_since_retrain_request",
            "Examples written since the last retrain request (this worker's partitions).",
            registry=r,
        )
        self.pending = Gauge(
            "routeiq_labeler_pending_decisions",
            "Decisions buffered in state (open windows, waiting labels, late rows).",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "routeiq_labeler_consumer_lag",
            "Records in the partition not yet processed (high watermark - next offset).",
            ["topic", "partition"],
            registry=r,
        )
        self.closed_until = Gauge(
            "routeiq_labeler_closed_until_seconds",
            "Per partition, windows starting before this event time are closed.",
            ["partition"],
            registry=r,
        )
        self.flush_seconds = Histogram(
            "routeiq_labeler_shard_write_seconds",
            "Time to label, merge and write one shard.",
            registry=r,
        )
