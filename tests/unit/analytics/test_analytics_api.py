"""The HTTP API over a real aggregator: summary, time series, dashboard, health, metrics."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from routeiq.dependencies import Dependencies
from routeiq_analytics.api import create_app
from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.metrics import AnalyticsMetrics
from starlette.testclient import TestClient
from unit.analytics.helpers import (
    DASHBOARD_CHARTS,
    STRONG,
    T0,
    WEAK,
    Clock,
    aggregator,
    decision,
    feedback,
)

EVIL = '<script>alert("x")</script>'


class Readiness:
    """The consumer's readiness as the API sees it, set by the test."""

    def __init__(self, dependencies: Dependencies | None = None) -> None:
        self.ready = False
        self.failure: str | None = None
        self.dependencies = dependencies

    def status(self) -> dict[str, Any]:
        status = {"assigned_partitions": 12 if self.ready else 0, "failure": self.failure}
        if self.dependencies is not None:
            status["dependencies"] = self.dependencies.states()
        return status


def _filled(clock: Clock) -> Aggregator:
    agg = aggregator(clock)
    for i in range(40):
        model = [STRONG, WEAK, EVIL][i % 3]
        agg.add_decision(
            decision(
                f"d{i}",
                timestamp_s=T0 - i * 60,
                model=model,
                strategy="learned" if i % 2 else "threshold",
                ab_arm="A" if i % 4 else "B",
                routing_ms=1.0 + i,
            )
        )
        agg.add_feedback(feedback(f"f{i}", f"d{i}", (i % 5) / 4))
    return agg


@pytest.fixture
def client() -> Any:
    clock = Clock(T0 + 5)
    agg = _filled(clock)
    metrics = AnalyticsMetrics()
    metrics.watch(agg, [300, 3600])
    readiness = Readiness()
    app = create_app(
        aggregator=agg,
        readiness=readiness,
        metrics=metrics,
        windows=[300, 3600],
        retention_s=3600,
        refresh_s=0,
    )
    with TestClient(app) as c:
        c.readiness = readiness
        yield c


def test_summary_takes_a_window_and_defaults_to_the_largest(client: TestClient) -> None:
    default = client.get("/api/summary").json()
    assert default["window"] == "1h"
    assert default["requests"]["total"] == 40
    five = client.get("/api/summary", params={"window": "5m"}).json()
    assert five["window_s"] == 300
    assert five["requests"]["total"] == 5  # T0, T0-60, ..., T0-240
    assert client.get("/api/summary", params={"window": "30m"}).json()["requests"]["total"] == 30


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("5x", "not a duration"),
        ("2h", "longer than the retention (1h)"),
        ("1s", "shorter than one bucket"),
    ],
)
def test_bad_windows_are_400_with_the_reason(client: TestClient, window: str, message: str) -> None:
    r = client.get("/api/summary", params={"window": window})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "InvalidQueryError"
    assert message in r.json()["error"]["message"]


def test_timeseries_selects_metrics_and_refuses_unknown_ones(client: TestClient) -> None:
    r = client.get("/api/timeseries", params={"window": "1h", "points": 12, "metric": "cost_usd"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"window_s", "from", "to", "step_s", "t", "cost_usd"}
    assert len(body["t"]) == len(body["cost_usd"]) == 12
    assert body["step_s"] == 300
    full = client.get("/api/timeseries").json()
    assert sum(sum(v) for v in full["requests_by_model"].values()) == 40
    bad = client.get("/api/timeseries", params={"metric": "cost_usd,vibes"})
    assert bad.status_code == 400
    assert "vibes" in bad.json()["error"]["message"]
    assert client.get("/api/timeseries", params={"points": "0"}).status_code == 400


def test_dashboard_renders_every_chart_with_data_and_escapes_names(client: TestClient) -> None:
    r = client.get("/", params={"window": "1h"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    charts = dict(re.findall(r'<svg class="chart" data-chart="([^"]+)" data-points="(\d+)"', html))
    assert set(charts) == DASHBOARD_CHARTS
    assert all(int(n) > 0 for n in charts.values()), charts
    assert "<script" not in html  # the model named like a script tag is text, not markup
    assert "&lt;script&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert 'class="active">1h<' in html


def test_summary_and_dashboard_show_the_n_model_baselines(client: TestClient) -> None:
    savings = client.get("/api/summary").json()["savings"]
    assert list(savings["always_model_usd"]) == [STRONG, WEAK]  # EVIL has no price
    assert savings["always_most_expensive"]["model"] == STRONG
    assert savings["unpriced_models"] == [EVIL]
    # 40 served grades: 14 on the strong model, short of the 20 a best model needs.
    assert savings["best_single_model"]["reason"].startswith("no candidate has 20 graded")
    html = client.get("/").text
    for kpi in ("Saved vs most expensive", "Saved vs best single model"):
        assert f'<div class="name">{kpi}</div>' in html
    assert "<h2>Always one model</h2>" in html
    assert "no price for &lt;script&gt;" in html  # the note, escaped


def test_dashboard_without_a_pair_and_with_a_best_model_that_costs_less() -> None:
    clock = Clock(T0 + 5)
    agg = aggregator(clock, pair=None, best_model_min_graded=2)
    for i in range(4):
        agg.add_decision(decision(f"d{i}", model=STRONG, candidates=(STRONG, WEAK)))
        agg.add_feedback(feedback(f"w{i}", f"d{i}", 1.0, candidate=WEAK))
    metrics = AnalyticsMetrics()
    metrics.watch(agg, [300])
    app = create_app(
        aggregator=agg,
        readiness=Readiness(),
        metrics=metrics,
        windows=[300],
        retention_s=3600,
        refresh_s=0,
    )
    with TestClient(app) as c:
        html = c.get("/").text
        text = c.get("/metrics").text
    # The weak model graded 1.0 four times (shadow): always using it would have cost
    # 4 × 200 × 0.6 / 1e6 = $0.00048, against $0.016 routed (all on the strong model).
    assert "costs $0.0155 (3233.3%) more" in html
    assert f'data-series="always {WEAK}"' in html
    assert (
        f'routeiq_analytics_window_always_model_cost_usd{{model="{STRONG}",window="5m"}} 0.016'
    ) in text
    assert 'baseline_cost_usd{baseline="best_single_model",window="5m"} 0.00048' in text


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    starting = client.get("/health/ready")
    assert starting.status_code == 503
    assert starting.json()["status"] == "starting"
    client.readiness.ready = True  # type: ignore[attr-defined]
    assert client.get("/health/ready").status_code == 200
    text = client.get("/metrics").text
    assert f'routeiq_analytics_window_requests{{model="{STRONG}",window="5m"}} 2.0' in text
    assert 'routeiq_analytics_window_routing_latency_ms{quantile="0.5",window="1h"}' in text
    assert 'routeiq_analytics_state{kind="buckets"} 40.0' in text


def test_a_lost_dependency_is_named_on_ready_and_in_metrics() -> None:
    clock = Clock(T0 + 5)
    metrics = AnalyticsMetrics()
    deps = Dependencies(log=logging.getLogger("t.api"), registry=metrics.registry)
    readiness = Readiness(deps)
    readiness.ready = True
    app = create_app(
        aggregator=aggregator(clock),
        readiness=readiness,
        metrics=metrics,
        windows=[300],
        retention_s=3600,
        refresh_s=0,
    )
    with TestClient(app) as c:
        deps["kafka"].failed("1/1 brokers are down")
        degraded = c.get("/health/ready")
        # Still serving the windows it holds: ready, but it says what is missing.
        assert degraded.status_code == 200
        body = degraded.json()
        assert body["status"] == "degraded"
        assert body["dependencies"]["kafka"]["up"] is False
        assert body["dependencies"]["kafka"]["error"] == "1/1 brokers are down"
        assert 'routeiq_dependency_up{dependency="kafka"} 0.0' in c.get("/metrics").text
        deps["kafka"].recovered()
        assert c.get("/health/ready").json()["status"] == "ready"
        assert 'routeiq_dependency_up{dependency="kafka"} 1.0' in c.get("/metrics").text
