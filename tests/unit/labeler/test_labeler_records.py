"""Decoded records → facts: the rules a record must pass, and the state round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.errors import ContractError
from routeiq.labeling import DecisionFacts, decision_facts, feedback_facts
from routeiq_labeler.errors import InvalidRecordError
from support.records import decision_record

NOW = 1_763_028_000_123 + 10_000


def _facts(record, key=None, now=NOW):
    return decision_facts(
        record, key=key or record["event_id"].encode(), now_ms=now, max_future_skew_ms=60_000
    )


def test_a_valid_decision_keeps_what_labelling_needs() -> None:
    record = decision_record(query_embedding=[0.5] * 384, embedding_model="minilm")
    facts = _facts(record)
    assert facts.event_time_ms == 1_763_028_000_123
    assert facts.selected_model == "strong"
    assert facts.propensity == 0.75
    assert facts.candidates == ("strong", "weak")
    assert facts.status == "SUCCESS"
    assert facts.cost_usd == 0.02
    assert facts.embedding_list() == [0.5] * 384


def test_invalid_record_error_is_a_contract_error() -> None:
    # The worker dead-letters ContractErrors; InvalidRecordError must be one of them.
    assert issubclass(InvalidRecordError, ContractError)


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({}, b"another-id", "is not the decision id"),
        ({"query_embedding": [0.1] * 383}, None, "383 values"),
        ({"query_embedding": [math.nan] + [0.0] * 383}, None, "NaN"),
        ({"selected_deployment": ""}, None, "selected_deployment is empty"),
        ({"event_id": ""}, b"", "event_id is empty"),
        ({"timestamp": NOW + 61_000}, None, "in the future"),
        ({"timestamp": -5}, None, "before the epoch"),
    ],
)
def test_invalid_decisions_are_refused_with_a_reason(change, key, reason) -> None:
    record = decision_record(**change)
    with pytest.raises(InvalidRecordError, match=reason):
        decision_facts(
            record,
            key=key if key is not None else record["event_id"].encode(),
            now_ms=NOW,
            max_future_skew_ms=60_000,
        )


def test_a_decision_without_key_is_invalid() -> None:
    record = decision_record()
    with pytest.raises(InvalidRecordError, match="no key"):
        decision_facts(record, key=None, now_ms=NOW, max_future_skew_ms=0)


def test_out_of_range_propensities_and_costs_are_invalid() -> None:
    record = decision_record()
    record["candidate_deployments"][1]["propensity"] = 1.5
    with pytest.raises(InvalidRecordError, match="propensity of weak"):
        _facts(record)
    record = decision_record()
    record["outcome"]["cost_usd"] = math.inf
    with pytest.raises(InvalidRecordError, match="cost_usd"):
        _facts(record)


def test_feedback_rules() -> None:
    good = {
        "feedback_id": "f1",
        "decision_id": "d1",
        "score": 0.25,
        "source": "user",
        "created_at": NOW,
        "candidate": "",
        "judge_model": None,
        "cost_usd": None,
        "latency_ms": None,
        "trace_id": None,
    }
    facts = feedback_facts(good, key=b"d1")
    assert facts.candidate is None  # "" and null both mean the served model
    assert facts.score == 0.25
    with pytest.raises(InvalidRecordError, match=r"score=1.01"):
        feedback_facts({**good, "score": 1.01}, key=b"d1")
    with pytest.raises(InvalidRecordError, match="not the decision id"):
        feedback_facts(good, key=b"d2")
    with pytest.raises(InvalidRecordError, match="feedback_id is empty"):
        feedback_facts({**good, "feedback_id": ""}, key=b"d1")
    with pytest.raises(InvalidRecordError, match="cost_usd"):
        feedback_facts({**good, "cost_usd": -1.0}, key=b"d1")


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False)
optional_text = st.none() | st.text(max_size=12)


@given(
    # Fields of the decision record itself, as the gateway may write them.
    fields=st.fixed_dictionaries(
        {
            "timestamp": st.integers(min_value=0, max_value=NOW),
            "selected_deployment": st.sampled_from(["strong", "weak"]),
            "exploration": st.booleans(),
            "query_embedding": st.none()
            | st.lists(st.floats(-4, 4, width=32), min_size=384, max_size=384),
            "ab_arm": optional_text,
            "domain": optional_text,
        }
    ),
    propensities=st.tuples(st.none() | st.floats(0, 1), st.none() | st.floats(0, 1)),
    status=st.sampled_from(["SUCCESS", "ERROR", "TIMEOUT", "CANCELLED", "UNKNOWN"]),
    cost=st.none() | finite,
    latency=st.none() | finite,
)
def test_facts_survive_the_json_table_round_trip(
    fields, propensities, status, cost, latency
) -> None:
    record = decision_record(**fields)
    for candidate, p in zip(record["candidate_deployments"], propensities, strict=True):
        candidate["propensity"] = p
    record["outcome"].update(status=status, cost_usd=cost, upstream_latency_ms=latency)
    facts = _facts(record)
    # Faust tables store values as JSON: what comes back must be the same facts.
    back = DecisionFacts.from_state(json.loads(json.dumps(facts.to_state())))
    assert back == facts
    if fields["query_embedding"] is not None:
        np.testing.assert_array_equal(
            np.asarray(back.embedding_list(), dtype=np.float32),
            np.asarray(fields["query_embedding"], dtype=np.float32),
        )
