"""Prometheus metrics: the consumer's own counters, and each configured window's numbers.

Window numbers are computed at scrape time from the same aggregates ``/api/summary`` reads
(a custom collector), so Prometheus and the dashboard never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.core.durations import format_duration


class AnalyticsMetrics:
    """Counters the consumer loop updates, on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "routeiq_analytics_records_total",
            "Records consumed, by kind (decision, feedback) and what became of them",
            ["kind", "outcome"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "routeiq_analytics_dead_lettered_total",
            "Records sent to the dead-letter topic, by kind and error type",
            ["kind", "error_type"],
            registry=r,
        )
        self.consumer_errors = Counter(
            "routeiq_analytics_consumer_errors_total",
            "Non-fatal errors reported by the Kafka consumer, by librdkafka error name",
            ["error"],
            registry=r,
        )
        self.commits = Counter(
            "routeiq_analytics_commits_total",
            "Offset commits after processed batches, by result",
            ["result"],
            registry=r,
        )
        self.registry_retries = Counter(
            "routeiq_analytics_registry_retries_total",
            "Decodes retried because the schema registry was unavailable",
            registry=r,
        )
        self.ready = Gauge(
            "routeiq_analytics_ready",
            "1 when partitions are assigned and the consumer has caught up",
            registry=r,
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
        p = "routeiq_analytics_window_"
        requests = GaugeMetricFamily(
            p + "requests", "Requests in the window by served model", labels=["window", "model"]
        )
        cost = GaugeMetricFamily(p + "cost_usd", "Actual cost in the window", labels=["window"])
        baseline = GaugeMetricFamily(
            p + "baseline_cost_usd",
            "What the window's requests would have cost under a baseline",
            labels=["window", "baseline"],
        )
        always_model = GaugeMetricFamily(
            p + "always_model_cost_usd",
            "What the window's requests would have cost had one candidate model served all",
            labels=["window", "model"],
        )
        success = GaugeMetricFamily(
            p + "success_rate", "Share of SUCCESS outcomes", labels=["window"]
        )
        exploration = GaugeMetricFamily(
            p + "exploration_share", "Share of exploration picks", labels=["window"]
        )
        latency = GaugeMetricFamily(
            p + "routing_latency_ms",
            "Routing latency (embedding + strategy) percentiles",
            labels=["window", "quantile"],
        )
        quality = GaugeMetricFamily(
            p + "quality",
            "Mean feedback score by strategy, A/B arm or model",
            labels=["window", "dimension", "name"],
        )
        for window_s in self._windows:
            w = format_duration(window_s)
            s = self._aggregator.summary(window_s)
            for model, n in s["requests"]["by_model"].items():
                requests.add_metric([w, model], n)
            cost.add_metric([w], s["cost"]["total_usd"])
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
                    baseline.add_metric([w, name], usd)
            for model, usd in savings["always_model_usd"].items():
                always_model.add_metric([w, model], usd)
            for family, key in ((success, "success_rate"), (exploration, "exploration_share")):
                if s[key] is not None:
                    family.add_metric([w], s[key])
            for key, q in (("p50", "0.5"), ("p95", "0.95")):
                if s["routing_latency_ms"][key] is not None:
                    latency.add_metric([w, q], s["routing_latency_ms"][key])
            for dimension in ("strategy", "arm", "model"):
                for name, row in s["quality"][f"by_{dimension}"].items():
                    mean = row["quality"]["mean"] if dimension != "model" else row["mean"]
                    if mean is not None:
                        quality.add_metric([w, dimension, name], mean)
        state = GaugeMetricFamily(
            "routeiq_analytics_state", "State held in memory, by kind", labels=["kind"]
        )
        for kind, n in self._aggregator.sizes().items():
            state.add_metric([kind], n)
        yield from (
            requests,
            cost,
            baseline,
            always_model,
            success,
            exploration,
            latency,
            quality,
            state,
        )
