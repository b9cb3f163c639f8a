"""Decoded Avro records → the few facts analytics keeps, with the rules a record must pass.

A record that decodes but cannot be aggregated honestly (negative tokens, a score outside
[0, 1], a non-finite timing) raises ``InvalidRecordError`` and is dead-lettered with the
message as the reason. Unlike the labeler, analytics does not insist that the Kafka key equals
the decision id: one process reads every partition, so the join does not rely on
co-partitioning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from routeiq_analytics.errors import InvalidRecordError


@dataclass(frozen=True, slots=True)
class Decision:
    """One ``RouterDecision`` as analytics sees it."""

    decision_id: str
    timestamp_s: float
    model: str
    strategy: str
    ab_arm: str | None
    exploration: bool
    fallback: bool
    status: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    routing_ms: float
    # ``candidate_deployments[].model_name``: the models the router could have chosen.
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Feedback:
    """One ``Feedback`` record: a score for the served model or, with ``candidate``, a shadow."""

    feedback_id: str
    decision_id: str
    score: float
    candidate: str | None
    created_s: float


def _seconds(value: Any, what: str) -> float:
    # fastavro turns timestamp-millis into an aware datetime; a reader schema without the
    # logical type would give the raw long.
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1000.0
    raise InvalidRecordError(f"{what} is not a timestamp: {value!r}")


def _number(value: Any, what: str, *, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecordError(f"{what} is not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidRecordError(f"{what}={value!r} is outside [{low}, {high}]")
    return number


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRecordError(f"{what} is empty or not a string: {value!r}")
    return value


def parse_decision(record: Mapping[str, Any]) -> Decision:
    """The facts of one decoded ``RouterDecision``; ``InvalidRecordError`` if unusable."""
    try:
        outcome = record["outcome"]
        timings = record["timings"]
        cost = outcome.get("cost_usd")
        candidates = tuple(
            _text(c["model_name"], "candidate_deployments.model_name")
            for c in record.get("candidate_deployments") or ()
        )
        return Decision(
            decision_id=_text(record["event_id"], "event_id"),
            timestamp_s=_seconds(record["timestamp"], "timestamp"),
            model=_text(record["selected_deployment"], "selected_deployment"),
            strategy=_text(record["strategy"]["name"], "strategy.name"),
            ab_arm=record.get("ab_arm") or None,
            exploration=bool(record.get("exploration", False)),
            fallback=bool(record["fallback"]["used"]),
            status=str(outcome["status"]),
            input_tokens=int(_number(outcome["input_tokens"], "outcome.input_tokens", low=0)),
            output_tokens=int(_number(outcome["output_tokens"], "outcome.output_tokens", low=0)),
            cost_usd=None if cost is None else _number(cost, "outcome.cost_usd", low=0),
            routing_ms=_number(timings["embedding_ms"], "timings.embedding_ms", low=0)
            + _number(timings["strategy_ms"], "timings.strategy_ms", low=0),
            candidates=candidates,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidRecordError(f"RouterDecision lacks a field analytics needs: {exc!r}") from exc


def parse_feedback(record: Mapping[str, Any]) -> Feedback:
    """The facts of one decoded ``Feedback``; ``InvalidRecordError`` if unusable."""
    try:
        return Feedback(
            feedback_id=_text(record["feedback_id"], "feedback_id"),
            decision_id=_text(record["decision_id"], "decision_id"),
            score=_number(record["score"], "score", low=0.0, high=1.0),
            candidate=record.get("candidate") or None,
            created_s=_seconds(record["created_at"], "created_at"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidRecordError(f"Feedback lacks a field analytics needs: {exc!r}") from exc
