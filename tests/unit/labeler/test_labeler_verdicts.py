"""Blind verdicts in Feedback (contract v2) feed the oracle columns of the labeler's rows."""

from __future__ import annotations

import asyncio

import pytest
from routeiq.contracts.catalog import FEEDBACK
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.labeling import LabelPolicy, feedback_facts
from routeiq.routing.judge import BlindJudge, BlindVerdict, Messages, render_verdict
from routeiq.routing.oracle import GradeScale, Oracle
from routeiq_labeler.errors import InvalidRecordError
from support.records import labeler_facts as facts

ORACLE = Oracle(cheap="weak", strong="strong")  # labeler_facts() is served by "strong"
NOW = 1_763_028_000_123


def verdict(grades: dict[str, str], seed: int = 4) -> BlindVerdict:
    """A real blind verdict (the judge's prompt, parse and mapping back) with these grades."""

    async def call(messages: Messages) -> str:
        order = BlindJudge.shuffled(grades, seed)
        return render_verdict([grades[m] for m in order])

    answers = {m: f"answer of {m}" for m in grades}
    result = asyncio.run(
        BlindJudge(call=call, model="routeiq-judge").judge("Q?", answers, seed=seed)
    )
    assert isinstance(result, BlindVerdict)
    return result


def record(v: BlindVerdict, *, served: str = "strong", decision_id: str = "d1") -> dict:
    score = {"correct": 1.0, "partial": 0.5, "wrong": 0.0}[v.grades[served]]
    return {
        "feedback_id": f"f-{decision_id}",
        "decision_id": decision_id,
        "score": score,
        "source": "judge",
        "created_at": NOW,
        "candidate": None,
        "cost_usd": None,
        "latency_ms": None,
        "trace_id": None,
        **v.feedback_fields(ORACLE),
    }


def through_avro(rec: dict) -> dict:
    serde = AvroSerde.for_contract(
        FEEDBACK, subject="routeiq.feedback.v1-value", resolver=LocalResolver()
    )
    return serde.decode(serde.encode(rec))


def test_a_verdict_round_trips_the_contract_and_labels_the_row() -> None:
    v = verdict({"strong": "correct", "weak": "partial"})
    decoded = through_avro(record(v))
    assert decoded["verdict_grades"] == {"strong": "correct", "weak": "partial"}
    assert decoded["verdict_order"] == list(v.order)
    assert decoded["verdict_seed"] == 4
    assert (decoded["oracle_cell"], decoded["policy"]) == ("partial/correct", "Complex_Query")
    fb = feedback_facts(decoded, key=b"d1")
    # A scale on which 0.5 would read as correct: the verdict's "partial" is kept as given.
    policy = LabelPolicy(oracle=Oracle(cheap="weak", strong="strong", scale=GradeScale(0.4, 0.1)))
    row = policy.row(facts(), {fb.feedback_id: fb.to_state()}, window_start_ms=0, late=False)
    assert row["outcome_models"] == ["strong", "weak"]
    assert row["outcome_qualities"] == [1.0, 0.5]
    assert row["outcome_grades"] == ["correct", "partial"]
    assert (row["oracle_cell"], row["policy"]) == ("partial/correct", "Complex_Query")
    assert row["quality_source"] == "feedback"


def test_without_an_oracle_configured_the_verdicts_cell_and_policy_are_used() -> None:
    v = verdict({"strong": "wrong", "weak": "correct"})
    fb = feedback_facts(through_avro(record(v)), key=b"d1")
    row = LabelPolicy().row(facts(), {fb.feedback_id: fb.to_state()}, window_start_ms=0, late=False)
    assert row["outcome_grades"] == ["wrong", "correct"]
    assert (row["oracle_cell"], row["policy"]) == ("correct/wrong", "Standard_Query")


def test_disagreeing_verdicts_fall_back_to_the_mean_quality() -> None:
    first = feedback_facts(
        through_avro(record(verdict({"strong": "correct", "weak": "wrong"}))), key=b"d1"
    )
    second = feedback_facts(
        {
            **through_avro(record(verdict({"strong": "correct", "weak": "correct"}))),
            "feedback_id": "f-other",
        },
        key=b"d1",
    )
    items = {first.feedback_id: first.to_state(), second.feedback_id: second.to_state()}
    row = LabelPolicy(oracle=ORACLE).row(facts(), items, window_start_ms=0, late=False)
    assert row["outcome_qualities"] == [1.0, 0.5]  # weak: mean of 0 and 1
    assert row["outcome_grades"] == ["correct", "partial"]  # GradeScale() of 0.5
    assert row["policy"] == "Complex_Query"
    # Two verdicts naming different cells, no oracle: no label rather than a pick.
    row = LabelPolicy().row(facts(), items, window_start_ms=0, late=False)
    assert "policy" not in row


def test_v1_feedback_still_reads_and_labels_as_before() -> None:
    resolver = LocalResolver()
    (_, v1_text), *_ = FEEDBACK.released()
    old = AvroSerde(subject="routeiq.feedback.v1-value", schema_text=v1_text, resolver=resolver)
    new = AvroSerde.for_contract(FEEDBACK, subject="routeiq.feedback.v1-value", resolver=resolver)
    rec = record(verdict({"strong": "correct", "weak": "wrong"}))
    for field in ("verdict_grades", "verdict_order", "verdict_seed", "oracle_cell", "policy"):
        del rec[field]
    decoded = new.decode(old.encode(rec))
    assert decoded["verdict_grades"] is None
    fb = feedback_facts(decoded, key=b"d1")
    assert fb.to_state() == {"s": 1.0, "c": None, "cost": None, "src": "judge"}
    row = LabelPolicy(oracle=ORACLE).row(
        facts(), {"f": fb.to_state()}, window_start_ms=0, late=False
    )
    assert row["outcome_grades"] == ["correct"]
    assert row["policy"] is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"verdict_grades": {"weak": "great"}}, "verdict_grades must map models"),
        ({"verdict_grades": {}}, "verdict_grades must map models"),
        ({"policy": "Easy_Query"}, "policy 'Easy_Query' is not one of"),
        ({"oracle_cell": "correct"}, "oracle_cell 'correct' is not"),
    ],
)
def test_malformed_verdicts_are_refused(change: dict, reason: str) -> None:
    rec = {**record(verdict({"strong": "correct", "weak": "wrong"})), **change}
    with pytest.raises(InvalidRecordError, match=reason):
        feedback_facts(rec, key=b"d1")
