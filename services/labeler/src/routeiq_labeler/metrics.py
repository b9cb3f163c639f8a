"""Prometheus metrics of the labeler, in a registry of their own (served at ``/metrics``)."""

from __future__ import annotations

from routeiq.metrics import MetricSet, counter, gauge, histogram


class LabelerMetrics(MetricSet):
    """Counters and gauges the worker updates; one instance per process."""

    events_in = counter(
        "routeiq_labeler_events_in_total",
        "Records consumed, by kind (decision, feedback).",
        "kind",
    )
    duplicates = counter(
        "routeiq_labeler_duplicates_total",
        "Records already held in state (replays after a restart), by kind.",
        "kind",
    )
    labeled = counter(
        "routeiq_labeler_labeled_total",
        "Decisions labelled and written to a shard, by quality source.",
        "quality_source",
    )
    shards_written = counter(
        "routeiq_labeler_shards_written_total",
        "Shard objects written (regular or late).",
        "kind",
    )
    shard_rows = counter(
        "routeiq_labeler_shard_rows_total",
        "Rows newly added to shard objects, by kind (regular or late).",
        "kind",
    )
    shard_write_errors = counter(
        "routeiq_labeler_shard_write_errors_total",
        "Shard writes that failed (retried at the next tick).",
    )
    late = counter(
        "routeiq_labeler_late_events_total",
        "Decisions that arrived after their window closed (they go to the late shard).",
    )
    late_replays = counter(
        "routeiq_labeler_late_replays_total",
        "Late rows dropped because the window's regular shard already held them.",
    )
    dead_lettered = counter(
        "routeiq_labeler_dead_lettered_total",
        "Records sent to the dead-letter topic, by source kind and error type.",
        "kind",
        "error_type",
    )
    feedback_unmatched = counter(
        "routeiq_labeler_feedback_unmatched_total",
        "Feedback dropped after waiting for a decision that never came or was written.",
    )
    retrain_requests = counter(
        "routeiq_labeler_retrain_requests_total",
        "RetrainRequest events published, by reason.",
        "reason",
    )
    examples_since_request = gauge(
        "routeiq_labeler_examples_since_retrain_request",
        "Examples written since the last retrain request (this worker's partitions).",
    )
    pending = gauge(
        "routeiq_labeler_pending_decisions",
        "Decisions buffered in state (open windows, waiting labels, late rows).",
    )
    consumer_lag = gauge(
        "routeiq_labeler_consumer_lag",
        "Records in the partition not yet processed (high watermark - next offset).",
        "topic",
        "partition",
    )
    closed_until = gauge(
        "routeiq_labeler_closed_until_seconds",
        "Per partition, windows starting before this event time are closed.",
        "partition",
    )
    flush_seconds = histogram(
        "routeiq_labeler_shard_write_seconds", "Time to label, merge and write one shard."
    )
