"""The labeler's errors, all under ``routeiq.errors.RouteIQError``."""

from __future__ import annotations

from routeiq.errors import ContractError, RouteIQError


class LabelerError(RouteIQError):
    """Base of the labeler's own errors."""


class InvalidRecordError(ContractError):
    """A record decoded but breaks a rule the labeler relies on (key, score range, embedding size).

    Like an undecodable record, it is dead-lettered with this message as the reason.
    """


class TopologyError(LabelerError):
    """Kafka topics are missing or not co-partitioned the way the join and the tables need."""
