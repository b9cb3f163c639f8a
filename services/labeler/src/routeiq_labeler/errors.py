"""The labeler's errors, all under ``routeiq.errors.RouteIQError``."""

from __future__ import annotations

from routeiq.errors import InvalidRecordError, RouteIQError

__all__ = ["InvalidRecordError", "LabelerError", "TopologyError"]


class LabelerError(RouteIQError):
    """Base of the labeler's own errors."""


class TopologyError(LabelerError):
    """Kafka topics are missing or not co-partitioned the way the join and the tables need."""
