"""Record rules: what analytics takes from a decoded event, and what it dead-letters."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from routeiq.contracts.catalog import FEEDBACK, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq_analytics.core.records import parse_decision, parse_feedback
from routeiq_analytics.errors import InvalidRecordError


def decision_record(**outcome: Any) -> dict[str, Any]:
    return {
        "event_id": "d-1",
        "trace_id": "0" * 32,
        "span_id": "0" * 16,
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "input": {"query_length": 12, "requested_model": "auto"},
        "strategy": {"name": "threshold", "version": "1"},
        "candidate_deployments": [],
        "selected_deployment": "m",
        "selection_reason": "threshold",
        "timings": {"total_ms": 9.0, "strategy_ms": 0.25, "embedding_ms": 1.5},
        "outcome": {
            "status": "SUCCESS",
            "input_tokens": 3,
            "output_tokens": 4,
            "total_tokens": 7,
            **outcome,
        },
        "fallback": {"used": False, "attempted_deployments": []},
        "ab_arm": "B",
        "exploration": True,
    }


def test_a_decision_through_the_real_contract() -> None:
    serde = AvroSerde.for_topic(ROUTER_DECISION, "d", resolver=LocalResolver())
    d = parse_decision(serde.decode(serde.encode(decision_record(cost_usd=0.5))))
    assert d.decision_id == "d-1"
    assert d.timestamp_s == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp()
    assert d.routing_ms == 1.75  # embedding + strategy
    assert (d.model, d.strategy, d.ab_arm, d.exploration, d.status) == (
        "m",
        "threshold",
        "B",
        True,
        "SUCCESS",
    )
    assert (d.input_tokens, d.output_tokens, d.cost_usd) == (3, 4, 0.5)


def test_feedback_through_the_real_contract() -> None:
    serde = AvroSerde.for_topic(FEEDBACK, "f", resolver=LocalResolver())
    record = {
        "feedback_id": "f-1",
        "decision_id": "d-1",
        "score": 0.75,
        "source": "judge",
        "created_at": 1_700_000_000_123,
        "candidate": "other",
    }
    f = parse_feedback(serde.decode(serde.encode(record)))
    assert (f.feedback_id, f.decision_id, f.score, f.candidate) == ("f-1", "d-1", 0.75, "other")
    assert f.created_s == pytest.approx(1_700_000_000.123)


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ({"input_tokens": -1}, "outcome.input_tokens=-1 is outside"),
        ({"cost_usd": math.nan}, "outcome.cost_usd=nan"),
        ({"cost_usd": -0.1}, "outcome.cost_usd=-0.1"),
    ],
)
def test_unusable_decisions_are_refused_with_the_reason(
    outcome: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidRecordError, match=reason):
        parse_decision(decision_record(**outcome))


def test_decision_missing_a_field_or_with_bad_timing_is_refused() -> None:
    record = decision_record()
    del record["timings"]
    with pytest.raises(InvalidRecordError, match="lacks a field"):
        parse_decision(record)
    record = decision_record()
    record["timings"]["strategy_ms"] = math.inf
    with pytest.raises(InvalidRecordError, match=r"timings\.strategy_ms"):
        parse_decision(record)
    record = decision_record()
    record["selected_deployment"] = ""
    with pytest.raises(InvalidRecordError, match="selected_deployment"):
        parse_decision(record)


@pytest.mark.parametrize("score", [1.5, -0.01, math.nan])
def test_scores_outside_zero_one_are_refused(score: float) -> None:
    record = {
        "feedback_id": "f",
        "decision_id": "d",
        "score": score,
        "created_at": 0,
    }
    with pytest.raises(InvalidRecordError, match="score"):
        parse_feedback(record)


def test_a_decisions_candidates_are_kept_in_router_order() -> None:
    serde = AvroSerde.for_topic(ROUTER_DECISION, "d", resolver=LocalResolver())
    record = decision_record()
    record["candidate_deployments"] = [
        {"model_name": name, "provider": "offline", "score": None, "available": True}
        for name in ("m", "cheap", "dear")
    ]
    d = parse_decision(serde.decode(serde.encode(record)))
    assert d.candidates == ("m", "cheap", "dear")
    assert parse_decision(decision_record()).candidates == ()
    record["candidate_deployments"][1]["model_name"] = ""
    with pytest.raises(InvalidRecordError, match=r"candidate_deployments\.model_name"):
        parse_decision(record)
