"""Prometheus metrics, declared once on the class, built on a registry of each instance's own.

Every service keeps its metrics on a private ``CollectorRegistry`` (tests build many
services in one process; the global registry would refuse the second). A ``MetricSet``
subclass declares its metrics as class attributes, naming only what differs (name, help,
labels); each instance builds all of them on its registry when it is created, so every
metric is exported from the first scrape.

    class WorkerMetrics(MetricSet):
        records = counter("routeiq_x_records_total", "Records read", "outcome")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, overload

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Prometheus' text exposition format, as ``generate_latest`` writes it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MetricT = TypeVar("MetricT", Counter, Gauge, Histogram)


class Declared(Generic[MetricT]):
    """A metric declared on a ``MetricSet`` subclass; read on an instance, it is that
    instance's own metric (built by ``MetricSet.__init__`` on the instance's registry)."""

    def __init__(self, build: Callable[[CollectorRegistry], MetricT]) -> None:
        self.build: Callable[[CollectorRegistry], MetricT] = build
        self.attribute = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = name

    @overload
    def __get__(self, instance: None, owner: type) -> Declared[MetricT]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> MetricT: ...

    def __get__(self, instance: object, owner: type) -> Declared[MetricT] | MetricT:
        if instance is None:
            return self
        # Only reached before ``MetricSet.__init__`` stored the built metric on the instance
        # (a non-data descriptor yields to the instance's own attribute).
        raise AttributeError(f"{owner.__name__}.{self.attribute} is built by MetricSet.__init__")


def counter(name: str, documentation: str, *labels: str) -> Declared[Counter]:
    """Declare a counter on a ``MetricSet`` subclass."""
    return Declared(lambda registry: Counter(name, documentation, labels, registry=registry))


def gauge(name: str, documentation: str, *labels: str) -> Declared[Gauge]:
    """Declare a gauge on a ``MetricSet`` subclass."""
    return Declared(lambda registry: Gauge(name, documentation, labels, registry=registry))


def histogram(
    name: str,
    documentation: str,
    *labels: str,
    buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
) -> Declared[Histogram]:
    """Declare a histogram on a ``MetricSet`` subclass (``buckets`` in seconds or units)."""
    return Declared(
        lambda registry: Histogram(name, documentation, labels, buckets=buckets, registry=registry)
    )


class MetricSet:
    """A service's metrics and the registry they live on."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Base classes first, then each class in declaration order: the order of /metrics.
        declared: dict[str, Declared[Any]] = {}
        for cls in reversed(type(self).__mro__):
            declared.update(
                (name, value) for name, value in vars(cls).items() if isinstance(value, Declared)
            )
        for name, declaration in declared.items():
            setattr(self, name, declaration.build(self.registry))

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        """A counter made after construction (a part that exists only in some deployments)."""
        return counter(name, documentation, *labels).build(self.registry)

    def render(self) -> bytes:
        """The registry in the text exposition format (``GET /metrics``)."""
        return generate_latest(self.registry)
