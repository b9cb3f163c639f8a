"""Prometheus metrics of the labeler, in a registry of their own (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from routeiq.metrics import MetricSet


class LabelerMetrics(MetricSet):
    """Counters and gauges the worker updates; one instance per process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.events_in = self.counter(
            "routeiq_labeler_events_in_total",
            "Records consumed, by kind (decision, feedback).",
            "kind",
        )
        self.duplicates = self.counter(
            "routeiq_labeler_duplicates_total",
            "Records already held in state (replays after a restart), by kind.",
            "kind",
        )
        self.labeled = self.counter(
            "routeiq_labeler_labeled_total",
            "Decisions labelled and written to a shard, by quality source.",
            "quality_source",
        )
        self.shards_written = self.counter(
            "routeiq_labeler_shards_written_total",
            "Shard objects written (regular or late).",
            "kind",
        )
        self.shard_rows = self.counter(
            "routeiq_labeler_shard_rows_total",
            "Rows newly added to shard objects, by kind (regular or late).",
            "kind",
        )
        self.shard_write_errors = self.counter(
            "routeiq_labeler_shard_write_errors_total",
            "Shard writes that failed (retried at the next tick).",
        )
        self.late = self.counter(
            "routeiq_labeler_late_events_total",
            "Decisions that arrived after their window closed (they go to the late shard).",
        )
        self.late_replays = self.counter(
            "routeiq_labeler_late_replays_total",
            "Late rows dropped because the window's regular shard already held them.",
        )
        self.dead_lettered = self.counter(
            "routeiq_labeler_dead_lettered_total",
            "Records sent to the dead-letter topic, by source kind and error type.",
            "kind",
            "error_type",
        )
        self.feedback_unmatched = self.counter(
            "routeiq_labeler_feedback_unmatched_total",
            "Feedback dropped after waiting for a decision that never came or was written.",
        )
        self.retrain_requests = self.counter(
            "routeiq_labeler_retrain_requests_total",
            "RetrainRequest events published, by reason.",
            "reason",
        )
        self.examples_since_request = self.gauge(
            "routeiq_labeler_examples_since_retrain_request",
            "Examples written since the last retrain request (this worker's partitions).",
        )
        self.pending = self.gauge(
            "routeiq_labeler_pending_decisions",
            "Decisions buffered in state (open windows, waiting labels, late rows).",
        )
        self.consumer_lag = self.gauge(
            "routeiq_labeler_consumer_lag",
            "Records in the partition not yet processed (high watermark - next offset).",
            "topic",
            "partition",
        )
        self.closed_until = self.gauge(
            "routeiq_labeler_closed_until_seconds",
            "Per partition, windows starting before this event time are closed.",
            "partition",
        )
        self.flush_seconds = self.histogram(
            "routeiq_labeler_shard_write_seconds", "Time to label, merge and write one shard."
        )
