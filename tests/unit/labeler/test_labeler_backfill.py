"""Jaeger spans → RouterDecision records (no network: the recorded fixture is read as a file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.traces import SkipSpan, decision_from_span, span_attributes

FIXTURE = Path(__file__).parents[2] / "integration" / "labeler" / "fixtures" / "jaeger_traces.json"


def _route_spans() -> list[dict]:
    doc = json.loads(FIXTURE.read_text())
    return [s for t in doc["data"] for s in t["spans"] if s["operationName"] == "routeiq.route"]


def _span(tags: list[dict], logs: list[dict] | None = None) -> dict:
    return {
        "traceID": "abc",
        "spanID": "12",
        "startTime": 1_700_000_000_123_456,
        "duration": 2_500,
        "tags": tags,
        "logs": logs or [],
    }


def _tag(key, value, kind="string"):
    return {"key": key, "type": kind, "value": value}


def test_every_recorded_routing_span_with_an_id_becomes_a_valid_decision() -> None:
    serde = AvroSerde.for_contract(ROUTER_DECISION, subject="d-value", resolver=LocalResolver())
    decisions, skipped = [], []
    for span in _route_spans():
        try:
            decisions.append(decision_from_span(span))
        except SkipSpan as exc:
            skipped.append(str(exc))
    assert len(decisions) == 7
    assert skipped == ["no routeiq.decision_id"]
    for record in decisions:
        assert serde.decode(serde.encode(record))["event_id"] == record["event_id"]
        assert record["query_embedding"] is None
        assert len(record["trace_id"]) == 32
        assert len(record["span_id"]) == 16


def test_outcome_fields_may_come_from_a_span_event() -> None:
    (span,) = [s for s in _route_spans() if s["logs"]]
    record = decision_from_span(span)
    fields = {f["key"]: f["value"] for f in span["logs"][0]["fields"]}
    assert record["outcome"]["input_tokens"] == fields["routeiq.input_tokens"]
    assert record["outcome"]["cost_usd"] == fields["routeiq.cost_usd"]
    assert record["timings"]["total_ms"] == fields["routeiq.total_ms"]


def test_minimal_span_defaults_and_array_shapes() -> None:
    record = decision_from_span(
        _span(
            [
                _tag("routeiq.decision_id", "d-1"),
                _tag("routeiq.selected_model", "b"),
                _tag("routeiq.candidates", "a, b"),  # a comma list, not JSON
                _tag("routeiq.propensities", "[0.5]"),  # misaligned: dropped
                _tag("routeiq.status", "weird"),
                _tag("routeiq.exploration", "true", "bool"),
                _tag("routeiq.input_tokens", 7, "int64"),
            ]
        )
    )
    assert [c["model_name"] for c in record["candidate_deployments"]] == ["a", "b"]
    assert [c["propensity"] for c in record["candidate_deployments"]] == [None, None]
    assert record["outcome"]["status"] == "UNKNOWN"
    assert record["exploration"] is True
    assert record["outcome"]["total_tokens"] == 7
    assert record["timestamp"] == 1_700_000_000_123
    assert record["timings"]["total_ms"] == 2.5  # the span's own duration
    assert record["trace_id"] == "abc".rjust(32, "0")


def test_the_served_model_is_added_to_candidates_when_missing() -> None:
    record = decision_from_span(
        _span(
            [
                _tag("routeiq.decision_id", "d-2"),
                _tag("routeiq.selected_model", "fallback-model"),
                _tag("routeiq.candidates", '["a"]'),
                _tag("routeiq.propensities", "[1.0]"),
            ]
        )
    )
    assert [(c["model_name"], c["propensity"]) for c in record["candidate_deployments"]] == [
        ("a", 1.0),
        ("fallback-model", None),
    ]


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ([_tag("routeiq.selected_model", "a")], "no routeiq.decision_id"),
        ([_tag("routeiq.decision_id", "d")], "no routeiq.selected_model"),
        (
            [
                _tag("routeiq.decision_id", "d"),
                _tag("routeiq.selected_model", "a"),
                _tag("routeiq.candidates", "[broken"),
            ],
            "not JSON",
        ),
        (
            [
                _tag("routeiq.decision_id", "d"),
                _tag("routeiq.selected_model", "a"),
                _tag("routeiq.cost_usd", "cheap"),
            ],
            "not a number",
        ),
    ],
)
def test_spans_that_cannot_be_decisions_are_skipped_with_a_reason(tags, reason) -> None:
    with pytest.raises(SkipSpan, match=reason):
        decision_from_span(_span(tags))


def test_tags_win_over_event_fields() -> None:
    attrs = span_attributes(
        _span(
            [_tag("routeiq.status", "SUCCESS")],
            [{"timestamp": 1, "fields": [_tag("routeiq.status", "ERROR"), _tag("x", "y")]}],
        )
    )
    assert attrs["routeiq.status"] == "SUCCESS"
    assert attrs["x"] == "y"
