"""Labels: quality sources, the reward, full-information rows and the shard schema."""

from __future__ import annotations

import math

import pytest
from routeiq.errors import InvalidRecordError
from routeiq.labeling import DecisionFacts, LabelPolicy, decision_facts, utc
from routeiq.routing.oracle import Oracle
from routeiq.routing.querykey import query_key
from routeiq.shards import SCHEMA, decode_table, encode_table, to_table
from support.records import DECIDED_AT_MS, router_decision
from support.records import labeler_facts as facts


def _items(*grades):
    return {f"f{i}": {"s": s, "c": c, "cost": cost} for i, (s, c, cost) in enumerate(grades)}


def test_outcome_quality_by_status_and_latency() -> None:
    policy = LabelPolicy(latency_slo_ms=1000, slow_success_quality=0.4)
    assert policy.outcome_quality(facts(upstream_latency_ms=900.0)) == 1.0
    assert policy.outcome_quality(facts(upstream_latency_ms=1500.0)) == 0.4
    # Without an upstream latency the request's total time is used.
    assert policy.outcome_quality(facts(upstream_latency_ms=None, latency_ms=1500.0)) == 0.4
    for status in ("ERROR", "TIMEOUT", "CANCELLED", "UNKNOWN"):
        assert policy.outcome_quality(facts(status=status)) == 0.0


def test_feedback_for_the_served_model_is_averaged_and_costs_weigh_in() -> None:
    policy = LabelPolicy(cost_weight=5.0)
    row = policy.row(
        facts(cost_usd=0.02),
        _items((0.2, None, None), (0.6, None, None)),
        window_start_ms=0,
        late=False,
    )
    assert row["quality"] == pytest.approx(0.4)
    assert row["quality_source"] == "feedback"
    assert row["reward"] == pytest.approx(0.4 - 5.0 * 0.02)
    assert row["feedback_count"] == 2


def test_shadow_outcomes_make_a_full_information_row() -> None:
    policy = LabelPolicy()
    row = policy.row(
        facts(cost_usd=0.02),
        _items((0.9, None, None), (0.3, "weak", 0.001), (0.5, "weak", 0.003), (1.0, "other", None)),
        window_start_ms=0,
        late=True,
    )
    assert row["outcome_models"] == ["strong", "other", "weak"]
    assert row["outcome_qualities"] == pytest.approx([0.9, 1.0, 0.4])
    assert row["outcome_costs"] == pytest.approx([0.02, None, 0.002])
    assert row["late"] is True
    assert row["propensity"] == 0.75
    assert row["candidate_propensities"] == [0.75, 0.25]


def test_feedback_naming_the_served_model_counts_as_served() -> None:
    row = LabelPolicy().row(facts(), _items((0.1, "strong", None)), window_start_ms=0, late=False)
    assert row["outcome_models"] == ["strong"]
    assert row["quality"] == 0.1


def test_without_feedback_the_outcome_labels_unless_feedback_is_required() -> None:
    row = LabelPolicy(quality_source="feedback_or_outcome").row(
        facts(status="ERROR", cost_usd=None), None, window_start_ms=0, late=False
    )
    assert (row["quality"], row["quality_source"], row["reward"]) == (0.0, "outcome", 0.0)
    # Strict feedback: the row is still written (every decision lands in one shard) unlabelled.
    row = LabelPolicy(quality_source="feedback").row(facts(), None, window_start_ms=0, late=False)
    assert math.isnan(row["quality"])
    assert math.isnan(row["reward"])
    assert row["quality_source"] == "none"


def test_outcome_source_ignores_grades_of_the_served_model_but_keeps_shadows() -> None:
    row = LabelPolicy(quality_source="outcome").row(
        facts(), _items((0.0, None, None), (0.7, "weak", None)), window_start_ms=0, late=False
    )
    assert row["quality"] == 1.0
    assert row["quality_source"] == "outcome"
    assert row["outcome_models"] == ["strong", "weak"]


def test_resolution_waits_for_the_served_models_grade_or_the_ttl() -> None:
    policy = LabelPolicy(ttl_ms=100)
    shadow_only = _items((0.5, "weak", None))
    assert not policy.resolved("strong", shadow_only, arrived_ms=0, now_ms=99)
    assert policy.resolved("strong", shadow_only, arrived_ms=0, now_ms=100)
    assert policy.resolved("strong", _items((0.5, None, None)), arrived_ms=0, now_ms=0)
    assert LabelPolicy(quality_source="outcome").resolved("strong", None, arrived_ms=0, now_ms=0)


def test_rows_fit_the_shard_schema_and_survive_parquet() -> None:
    policy = LabelPolicy()
    rows = [
        policy.row(
            facts(ts=5_000 + i, embedding=bytes(384 * 4) if i % 2 else None),
            _items((0.5, None, None)),
            window_start_ms=0,
            late=False,
        )
        for i in range(6)
    ]
    table = to_table(rows)
    assert table.schema.equals(SCHEMA)
    back = decode_table(encode_table(table)).to_pylist()
    missing = {r["decision_id"] for r in rows if r["embedding"] is None}
    assert {r["decision_id"] for r in back if r["embedding"] is None} == missing
    assert all(r["embedding"] == [0.0] * 384 for r in back if r["decision_id"] not in missing)
    assert {r["event_time"] for r in back} == {utc(5_000 + i) for i in range(6)}
    assert utc(1_763_028_000_123).isoformat() == "2025-11-13T10:00:00.123000+00:00"


ORACLE = Oracle(cheap="weak", strong="strong")


def test_the_oracle_labels_a_row_whose_cheap_and_strong_answers_were_both_graded() -> None:
    policy = LabelPolicy(oracle=ORACLE)
    # Served by the strong model (graded correct), the cheap one graded wrong as a shadow.
    row = policy.row(
        facts(), _items((1.0, None, None), (0.0, "weak", None)), window_start_ms=0, late=False
    )
    assert row["outcome_models"] == ["strong", "weak"]
    assert row["outcome_grades"] == ["correct", "wrong"]
    assert (row["oracle_cell"], row["policy"]) == ("wrong/correct", "Complex_Query")
    # The reward stays for the other router types.
    assert row["reward"] == pytest.approx(1.0 - 10.0 * row["cost_usd"])
    # A partial cheap answer and a wrong strong one: the cheap model is the one to use.
    row = policy.row(
        facts(), _items((0.0, None, None), (0.5, "weak", None)), window_start_ms=0, late=False
    )
    assert (row["oracle_cell"], row["policy"]) == ("partial/wrong", "Standard_Query")


def test_no_oracle_label_without_both_grades_or_from_an_outcome() -> None:
    policy = LabelPolicy(oracle=ORACLE)
    # Only the served (strong) answer graded: its grade, no cell.
    row = policy.row(facts(), _items((1.0, None, None)), window_start_ms=0, late=False)
    assert row["outcome_grades"] == ["correct"]
    assert (row["oracle_cell"], row["policy"]) == (None, None)
    # The served quality came from the outcome (a success), not a grade: it is not graded.
    row = policy.row(facts(), _items((0.0, "weak", None)), window_start_ms=0, late=False)
    assert row["quality_source"] == "outcome"
    assert row["outcome_grades"] == [None, "wrong"]
    assert row["policy"] is None
    # Without an oracle the columns stay null.
    row = LabelPolicy().row(
        facts(), _items((1.0, None, None), (0.0, "weak", None)), window_start_ms=0, late=False
    )
    assert "policy" not in row
    assert to_table([row]).column("policy").to_pylist() == [None]


def test_a_shard_written_before_the_oracle_columns_reads_them_as_null() -> None:
    rows = [LabelPolicy().row(facts(), None, window_start_ms=0, late=False)]
    old = to_table(rows).drop_columns(["outcome_grades", "oracle_cell", "policy", "query_key"])
    back = decode_table(encode_table(old))
    assert back.schema.equals(SCHEMA)
    assert back.column("oracle_cell").to_pylist() == [None]
    assert back.column("query_key").to_pylist() == [None]


def test_the_query_key_travels_from_the_decision_to_the_row() -> None:
    key = query_key(b"k" * 32, "What is 6 * 7?")
    record = router_decision(query_key=key).to_record()
    kept = decision_facts(
        record, key=record["event_id"].encode(), now_ms=DECIDED_AT_MS, max_future_skew_ms=0
    )
    assert DecisionFacts.from_state(kept.to_state()) == kept
    row = LabelPolicy().row(kept, None, window_start_ms=0, late=False)
    assert to_table([row]).column("query_key").to_pylist() == [key]
    # State kept before query keys existed reads as none.
    state = kept.to_state()
    del state["qk"]
    assert DecisionFacts.from_state(state).query_key is None
    with pytest.raises(InvalidRecordError, match="query_key is not 64 hex"):
        decision_facts(
            {**record, "query_key": "What is 6 * 7?"},
            key=record["event_id"].encode(),
            now_ms=DECIDED_AT_MS,
            max_future_skew_ms=0,
        )
