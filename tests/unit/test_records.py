"""The contract builders against their .avsc: same fields, same nesting, records that encode."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import numpy as np
import pytest
from routeiq.contracts.catalog import DEAD_LETTER, ROUTER_DECISION, ROUTING_CONFIG, Contract
from routeiq.contracts.records import (
    MAX_REASON_CHARS,
    CandidateDeployment,
    DeadLetter,
    DecisionInput,
    DecisionOutcome,
    Fallback,
    RouterDecision,
    RoutingConfigChange,
    Timings,
)
from routeiq.errors import ContractError
from support.kafka import FakeMessage


def _assert_fields(record: Any, schema: Any) -> None:
    """The record has exactly the schema's fields, at every level of nested records."""
    if isinstance(schema, list):  # a union: the branch the value takes
        branches = [s for s in schema if s != "null"]
        if record is None or len(branches) != 1:
            return
        schema = branches[0]
    if isinstance(schema, dict) and schema.get("type") == "record":
        assert set(record) == {f["name"] for f in schema["fields"]}, schema["name"]
        for f in schema["fields"]:
            _assert_fields(record[f["name"]], f["type"])
    elif isinstance(schema, dict) and schema.get("type") == "array":
        for item in record:
            _assert_fields(item, schema["items"])


def _encode(contract: Contract, record: dict[str, Any]) -> dict[str, Any]:
    schema = fastavro.parse_schema(json.loads(contract.working_text()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    decoded: dict[str, Any] = fastavro.schemaless_reader(buffer, schema)  # type: ignore[call-arg,assignment]
    return decoded


def _decision(**overrides: Any) -> RouterDecision:
    fields: dict[str, Any] = {
        "event_id": "d-1",
        "trace_id": "0" * 32,
        "span_id": "0" * 16,
        "timestamp_ms": 1_700_000_000_000,
        "input": DecisionInput(query_length=12, requested_model="router", user_id="u"),
        "strategy_name": "knn",
        "strategy_version": "3",
        "candidates": [
            CandidateDeployment("strong", "openai", score=0.9, propensity=0.95),
            CandidateDeployment("weak", "openai", score=0.1, propensity=0.05),
        ],
        "selected_deployment": "strong",
        "selection_reason": "score",
        "timings": Timings(total_ms=3.0, strategy_ms=0.5, embedding_ms=1.0),
        "outcome": DecisionOutcome("SUCCESS", input_tokens=10, output_tokens=5, cost_usd=0.01),
        "fallback": Fallback(used=True, attempted_deployments=["weak"], reason="served by x"),
        "router_version": "7",
        "query_embedding": np.arange(4, dtype=np.float32),
        "embedding_model": "minilm",
    }
    fields.update(overrides)
    return RouterDecision(**fields)


def test_router_decision_builder_has_the_schema_fields() -> None:
    schema = json.loads(ROUTER_DECISION.working_text())
    record = _decision().to_record()
    record["query_embedding"] = record["query_embedding"].tolist()
    _assert_fields(record, schema)


def test_router_decision_encodes_and_derives_totals() -> None:
    record = _decision().to_record()
    record["query_embedding"] = record["query_embedding"].tolist()
    decoded = _encode(ROUTER_DECISION, record)
    assert decoded["outcome"]["total_tokens"] == 15
    assert decoded["candidate_deployments"][1]["propensity"] == pytest.approx(0.05)
    assert decoded["fallback"]["attempted_deployments"] == ["weak"]


def test_embedding_model_is_named_only_with_a_vector() -> None:
    record = _decision(query_embedding=None).to_record()
    assert record["embedding_model"] is None
    assert _encode(ROUTER_DECISION, record)["query_embedding"] is None


def test_dead_letter_builder_has_the_schema_fields() -> None:
    letter = DeadLetter.of(
        topic="t",
        partition=1,
        offset=2,
        timestamp_ms=0,
        key=b"k",
        value=b"\x00\x01",
        headers=[("h", b"\xff"), ("n", None)],
        error=ValueError("bad"),
        consumer="c",
        now_ms=5,
    )
    record = letter.to_record()
    _assert_fields(record, json.loads(DEAD_LETTER.working_text()))
    decoded = _encode(DEAD_LETTER, record)
    assert decoded["source_timestamp"] is None  # 0 means the broker set none
    assert decoded["headers"] == {"h": "\ufffd", "n": ""}
    assert (decoded["error_type"], decoded["reason"]) == ("ValueError", "bad")
    assert letter.kafka_key == b"t/1/2"  # the source position: a replay is recognisable


def _message(timestamp: tuple[int, int]) -> FakeMessage:
    return FakeMessage(topic_="src", partition_=3, offset_=9, value_=b"x", timestamp_=timestamp)


def test_dead_letter_from_message_and_reason_rules() -> None:
    letter = DeadLetter.from_message(
        _message((1, 123)), error_type="Boom", reason="r" * 10_000, consumer="c", now_ms=1
    )
    assert (letter.source_partition, letter.source_offset) == (3, 9)
    assert letter.source_timestamp_ms == 123
    assert len(letter.reason) == MAX_REASON_CHARS
    # Timestamp type 0: the broker has no timestamp, whatever the value says.
    assert (
        DeadLetter.from_message(
            _message((0, 123)), error=KeyError("k"), consumer="c", now_ms=1
        ).source_timestamp_ms
        is None
    )
    with pytest.raises(ValueError, match="needs an error"):
        DeadLetter.from_message(_message((1, 1)), consumer="c", now_ms=1)


def _config_change(**overrides: Any) -> RoutingConfigChange:
    fields: dict[str, Any] = {
        "change_id": "c-1",
        "fleet": "default",
        "version": 3,
        "action": "ROLLBACK",
        "config": {"default": "cheapest", "kill_switch": True},
        "change": {},
        "author": "oncall@example.com",
        "written_by": "gw-0",
        "changed_at_ms": 1_700_000_000_000,
        "reason": "bad router",
        "rollback_to": 1,
    }
    fields.update(overrides)
    return RoutingConfigChange(**fields)


def test_routing_config_builder_has_the_schema_fields_and_round_trips() -> None:
    change = _config_change()
    record = change.to_record()
    _assert_fields(record, json.loads(ROUTING_CONFIG.working_text()))
    decoded = _encode(ROUTING_CONFIG, record)
    assert RoutingConfigChange.from_record(decoded) == change
    # One configuration, one text: key order does not change the record.
    reordered = _config_change(config={"kill_switch": True, "default": "cheapest"})
    assert reordered.to_record()["config_json"] == record["config_json"]
    assert change.kafka_key == b"default"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("config_json", "[1, 2]"),
        ("config_json", "{not json"),
        ("change_json", "null"),
        ("version", 0),
        ("action", "UNKNOWN"),
    ],
)
def test_routing_config_record_no_replica_can_apply_is_refused(field: str, value: Any) -> None:
    record = _config_change().to_record()
    record[field] = value
    with pytest.raises(ContractError):
        RoutingConfigChange.from_record(record)
