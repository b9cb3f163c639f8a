"""MetricSet: one-line declarations on a private registry."""

from __future__ import annotations

from routeiq.metrics import MetricSet


class _Metrics(MetricSet):
    def __init__(self) -> None:
        super().__init__()
        self.records = self.counter("t_records_total", "Records", "outcome")
        self.depth = self.gauge("t_depth", "Depth")
        self.seconds = self.histogram("t_seconds", "Seconds", "kind", buckets=(0.1, 1.0))


def test_metrics_live_on_their_own_registry_and_render() -> None:
    first, second = _Metrics(), _Metrics()  # a second set does not collide with the first
    first.records.labels("ok").inc(2)
    first.depth.set(3)
    first.seconds.labels("fit").observe(0.5)
    text = first.render().decode()
    assert 't_records_total{outcome="ok"} 2.0' in text
    assert "t_depth 3.0" in text
    assert 't_seconds_bucket{kind="fit",le="1.0"} 1.0' in text
    assert 't_records_total{outcome="ok"}' not in second.render().decode()
