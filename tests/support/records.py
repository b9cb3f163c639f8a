"""Records for tests, built once: a RouterDecision through the contract's own builder, and the
labeler's facts read from that same decision, so the two never disagree on a default."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from routeiq.contracts.records import (
    CandidateDeployment,
    DecisionInput,
    DecisionOutcome,
    RouterDecision,
    Timings,
)
from routeiq.labeling import DecisionFacts, decision_facts

MODELS = ("strong", "weak")
# The decision's event time: 2025-11-13T10:00:00.123Z.
DECIDED_AT = datetime(2025, 11, 13, 10, 0, 0, 123000, tzinfo=UTC)
DECIDED_AT_MS = 1_763_028_000_123


def router_decision(**changes: Any) -> RouterDecision:
    """A served decision between ``MODELS`` (the strong one chosen), ``changes`` replacing
    any field; a fresh ``event_id`` unless one is given."""
    decision = RouterDecision(
        event_id=str(uuid.uuid4()),
        trace_id="0" * 32,
        span_id="1" * 16,
        timestamp_ms=DECIDED_AT_MS,
        input=DecisionInput(query_length=42, requested_model="auto", team_id="t"),
        strategy_name="knn",
        strategy_version="2",
        candidates=[
            CandidateDeployment(MODELS[0], "x", score=0.8, propensity=0.75),
            CandidateDeployment(MODELS[1], "y", score=0.2, propensity=0.25),
        ],
        selected_deployment=MODELS[0],
        selection_reason="argmax",
        timings=Timings(total_ms=1200.0, strategy_ms=3.0, embedding_ms=2.0),
        outcome=DecisionOutcome(
            status="SUCCESS",
            input_tokens=10,
            output_tokens=20,
            cost_usd=0.02,
            upstream_latency_ms=1100.0,
        ),
        router_version="r7",
        ab_arm="B",
        domain="math",
    )
    return dataclasses.replace(decision, **changes)


def decision_record(**overrides: Any) -> dict[str, Any]:
    """``router_decision()`` decoded as fastavro returns it (the timestamp an aware datetime),
    with ``overrides`` applied to the record's own keys."""
    record = router_decision().to_record()
    record["timestamp"] = DECIDED_AT
    record.update(overrides)
    return record


def labeler_facts(
    decision_id: str | None = None, *, ts: int = 1_000_000, **changes: Any
) -> DecisionFacts:
    """What the labeler keeps of ``router_decision()`` (read by its own rules), at event time
    ``ts``, ``changes`` replacing any fact."""
    record = router_decision(event_id=decision_id or str(uuid.uuid4())).to_record()
    kept = decision_facts(
        record, key=record["event_id"].encode(), now_ms=DECIDED_AT_MS, max_future_skew_ms=0
    )
    return dataclasses.replace(kept, event_time_ms=ts, **changes)
