"""Prometheus metrics: the consumer's own counters, and each configured window's numbers.

Window numbers are computed at scrape time from the same aggregates ``/api/summary`` reads
(a custom collector), so Prometheus and the dashboard never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from routeiq.metrics import MetricSet, counter, gauge

from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.core.durations import format_duration

WINDOW_PREFIX = "routeiq_analytics_window_"

# Per-window gauges: key → (name after WINDOW_PREFIX, help, labels).
WINDOW_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "requests": ("requests", "Requests in the window by served model", ("window", "model")),
    "cost": ("cost_usd", "Actual cost in the window", ("window",)),
    "baseline": (
        "baseline_cost_usd",
        "What the window's requests would have cost under a baseline",
        ("window", "baseline"),
    ),
    "always_model": (
        "always_model_cost_usd",
        "What the window's requests would have cost had one candidate model served all",
        ("window", "model"),
    ),
    "success_rate": ("success_rate", "Share of SUCCESS outcomes", ("window",)),
    "exploration_share": ("exploration_share", "Share of exploration picks", ("window",)),
    "latency": (
        "routing_latency_ms",
        "Routing latency (embedding + strategy) percentiles",
        ("window", "quantile"),
    ),
    "quality": (
        "quality",
        "Mean feedback score by strategy, A/B arm or model",
        ("window", "dimension", "name"),
    ),
}


class AnalyticsMetrics(MetricSet):
    """Counters the consumer loop updates, on a registry of their own."""

    records = counter(
        "routeiq_analytics_records_total",
        "Records consumed, by kind (decision, feedback) and what became of them",
        "kind",
        "outcome",
    )
    dead_lettered = counter(
        "routeiq_analytics_dead_lettered_total",
        "Records sent to the dead-letter topic, by kind and error type",
        "kind",
        "error_type",
    )
    consumer_errors = counter(
        "routeiq_analytics_consumer_errors_total",
        "Non-fatal errors reported by the Kafka consumer, by librdkafka error name",
        "error",
    )
    commits = counter(
        "routeiq_analytics_commits_total",
        "Offset commits after processed batches, by result",
        "result",
    )
    registry_retries = counter(
        "routeiq_analytics_registry_retries_total",
        "Decodes retried because the schema registry was unavailable",
    )
    ready = gauge(
        "routeiq_analytics_ready", "1 when partitions are assigned and the consumer has caught up"
    )

    def watch(self, aggregator: Aggregator, windows: Sequence[int]) -> None:
        """Export ``windows``' summaries and the state sizes at every scrape."""
        self.registry.register(WindowCollector(aggregator, windows))


class WindowCollector(Collector):
    """Gauges per configured window, computed from the aggregates when scraped."""

    def __init__(self, aggregator: Aggregator, windows: Sequence[int]) -> None:
        self._aggregator = aggregator
        self._windows = list(windows)

    def collect(self) -> Iterator[Metric]:
        f = {
            key: GaugeMetricFamily(WINDOW_PREFIX + name, doc, labels=list(labels))
            for key, (name, doc, labels) in WINDOW_FAMILIES.items()
        }
        for window_s in self._windows:
            w = format_duration(window_s)
            s = self._aggregator.summary(window_s)
            for model, n in s["requests"]["by_model"].items():
                f["requests"].add_metric([w, model], n)
            f["cost"].add_metric([w], s["cost"]["total_usd"])
            savings = s["savings"]
            # A baseline that does not exist in this window (no pair, no graded model) is
            # left out rather than exported as 0.
            for name, usd in (
                ("always_strong", savings["always_strong"]["baseline_usd"]),
                ("always_weak", savings["always_weak_usd"]),
                ("random_equal_quality", savings["random_equal_quality"]["baseline_usd"]),
                ("always_most_expensive", savings["always_most_expensive"]["baseline_usd"]),
                ("best_single_model", savings["best_single_model"]["baseline_usd"]),
            ):
                if usd is not None:
                    f["baseline"].add_metric([w, name], usd)
            for model, usd in savings["always_model_usd"].items():
                f["always_model"].add_metric([w, model], usd)
            for key in ("success_rate", "exploration_share"):
                if s[key] is not None:
                    f[key].add_metric([w], s[key])
            for key, q in (("p50", "0.5"), ("p95", "0.95")):
                if s["routing_latency_ms"][key] is not None:
                    f["latency"].add_metric([w, q], s["routing_latency_ms"][key])
            for dimension in ("strategy", "arm", "model"):
                for name, row in s["quality"][f"by_{dimension}"].items():
                    mean = row["quality"]["mean"] if dimension != "model" else row["mean"]
                    if mean is not None:
                        f["quality"].add_metric([w, dimension, name], mean)
        state = GaugeMetricFamily(
            "routeiq_analytics_state", "State held in memory, by kind", labels=["kind"]
        )
        for kind, n in self._aggregator.sizes().items():
            state.add_metric([kind], n)
        yield from f.values()
        yield state
