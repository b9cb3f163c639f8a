"""MetricSet: metrics declared on the class, built on each instance's private registry."""

from __future__ import annotations

import pytest
from routeiq.metrics import Declared, MetricSet, counter, gauge, histogram


class _Metrics(MetricSet):
    records = counter("t_records_total", "Records", "outcome")
    depth = gauge("t_depth", "Depth")
    seconds = histogram("t_seconds", "Seconds", "kind", buckets=(0.1, 1.0))


class _MoreMetrics(_Metrics):
    extra = counter("t_extra_total", "Declared by a subclass")


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


def test_every_declared_metric_is_exported_from_the_start_base_first() -> None:
    text = _MoreMetrics().render().decode()
    kinds = [line.split()[2:] for line in text.splitlines() if line.startswith("# TYPE")]
    assert kinds[:4] == [
        ["t_records_total", "counter"],
        ["t_depth", "gauge"],
        ["t_seconds", "histogram"],
        ["t_extra_total", "counter"],
    ]
    assert "t_extra_total 0.0" in text


def test_a_declaration_is_a_metric_only_on_a_built_instance() -> None:
    assert isinstance(_Metrics.records, Declared)  # on the class: the declaration itself
    with pytest.raises(AttributeError, match=r"_Metrics\.records is built by MetricSet"):
        _Metrics.__dict__["records"].__get__(object(), _Metrics)


def test_a_counter_made_after_construction_lives_on_the_same_registry() -> None:
    metrics = _Metrics()
    metrics.counter("t_late_total", "Made later", "result").labels("applied").inc()
    assert 't_late_total{result="applied"} 1.0' in metrics.render().decode()
