"""``prepare``: decisions read from traces plus their feedback → labelled shards, by the
labeler's own rules, under their own key segment, the same objects on every run."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from routeiq.contracts.catalog import FEEDBACK
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.labeling import LabelPolicy
from routeiq.shards import list_manifests, read_tables
from routeiq_trainer.errors import RequestError
from routeiq_trainer.prepare import ORIGIN, Prepared, ShardLayout, feedback_for, prepare
from routeiq_trainer.project import project
from support.kafka import FakeMessage
from support.records import DECIDED_AT_MS, router_decision
from support.storage import MemoryStore

BUCKET = "shards"
SERDE = AvroSerde.for_contract(FEEDBACK, subject="f-value", resolver=LocalResolver())
LAYOUT = ShardLayout(window_ms=60_000, partitions=2, origin=ORIGIN)


class Store(MemoryStore):
    """The unit tier's store, with the bucket creation ``write_rows`` asks for."""

    def ensure_bucket(self, bucket: str, *, versioned: bool = False) -> None:
        self.buckets = {*getattr(self, "buckets", ()), bucket}


def traced(i: int, **changes: Any) -> dict[str, Any]:
    """A decision as ``routeiq.traces`` returns it: the record, embedding as a float list."""
    vector = np.full(384, i + 1, dtype=np.float32) / 10
    decision = router_decision(
        event_id=f"d{i}",
        timestamp_ms=DECIDED_AT_MS + i * 30_000,
        query_embedding=vector,
        embedding_model="minilm",
    )
    record = decision.to_record()
    record["query_embedding"] = vector.tolist()
    record.update(changes)
    return record


def feedback(decision_id: str, score: float, **changes: Any) -> FakeMessage:
    record = {
        "feedback_id": str(uuid.uuid4()),
        "decision_id": decision_id,
        "score": score,
        "source": "user",
        "created_at": DECIDED_AT_MS + 90_000,
        "candidate": None,
        "cost_usd": None,
        "latency_ms": None,
        "trace_id": None,
        **changes,
    }
    return FakeMessage(key_=decision_id.encode(), value_=SERDE.encode(record))


def run(decisions: list[dict[str, Any]], messages: list[FakeMessage], store: Store):
    report = Prepared()
    asked: list[set[str]] = []

    def read_feedback(wanted: set[str]) -> dict:
        asked.append(wanted)
        return feedback_for(messages, serde=SERDE, wanted=wanted, report=report)

    prepare(
        decisions,
        read_feedback,
        policy=LabelPolicy(cost_weight=10.0),
        store=store,  # type: ignore[arg-type]
        bucket=BUCKET,
        layout=LAYOUT,
        now_ms=DECIDED_AT_MS + 3_600_000,
        report=report,
    )
    return report, asked


def test_decisions_are_joined_with_their_feedback_and_labelled_like_the_labeler() -> None:
    store = Store()
    decisions = [traced(i) for i in range(4)]
    messages = [
        feedback("d0", 0.0),
        feedback("d1", 1.0),
        feedback("d1", 0.5),  # two grades of one answer are averaged
        feedback("elsewhere", 1.0),  # another decision's: read, not used
        FakeMessage(key_=b"d2", value_=b"\x00garbage"),  # the labeler dead-letters this one
    ]
    report, asked = run(decisions, messages, store)
    assert asked == [{"d0", "d1", "d2", "d3"}]
    assert (report.decisions, report.with_embedding, report.with_feedback) == (4, 4, 2)
    assert report.feedback_read == 5
    assert [r.split(":")[0] for r in report.skipped] == ["invalid feedback"]

    assert all(k.startswith(f"shards/router_decision.v1/{ORIGIN}/") for k in report.manifests)
    table, _ = read_tables(store, BUCKET, report.manifests)  # type: ignore[arg-type]
    rows = {r["decision_id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["d0", "d1", "d2", "d3"]
    assert (rows["d0"]["quality"], rows["d0"]["quality_source"]) == (0.0, "feedback")
    assert (rows["d1"]["quality"], rows["d1"]["feedback_count"]) == (0.75, 2)
    assert (rows["d2"]["quality"], rows["d2"]["quality_source"]) == (1.0, "outcome")
    assert rows["d3"]["reward"] == pytest.approx(1.0 - 10.0 * 0.02)
    np.testing.assert_allclose(rows["d3"]["embedding"], decisions[3]["query_embedding"])
    # Windows of 60 s by event time: decisions 30 s apart share a window two by two.
    windows = {r["decision_id"]: r["window_start"] for r in rows.values()}
    assert windows["d0"] == windows["d1"] != windows["d2"] == windows["d3"]


def test_preparing_again_writes_the_same_objects_and_invalid_decisions_are_skipped() -> None:
    store = Store()
    first, _ = run([traced(i) for i in range(3)], [], store)
    keys = sorted(store.objects)
    bad = [
        traced(7, event_id=""),
        traced(8, candidate_deployments=[{"model_name": "x", "propensity": 7.0}]),
        traced(9, outcome=None),
    ]
    again, _ = run([traced(i) for i in range(3)] + bad, [], store)
    assert sorted(store.objects) == keys
    assert again.manifests.keys() == first.manifests.keys()
    assert list_manifests(store, BUCKET) == sorted(first.manifests)  # type: ignore[arg-type]
    reasons = sorted(again.skipped)
    assert len(reasons) == 3
    assert all(r.startswith("invalid decision: ") for r in reasons)
    assert any("propensity" in r for r in reasons)


def test_a_range_without_decisions_is_an_error_not_an_empty_shard() -> None:
    store = Store()
    with pytest.raises(RequestError, match="no decision to prepare"):
        run([traced(1, event_id="")], [], store)
    assert store.objects == {}


def test_shard_origins_must_be_plain_names() -> None:
    with pytest.raises(ValueError, match="short lowercase name"):
        ShardLayout(origin="../labeler")
    with pytest.raises(ValueError, match="short lowercase name"):
        ShardLayout(origin="late")


def test_the_entry_point_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTEIQ_TRAINER_JAEGER_URL", raising=False)
    result = CliRunner().invoke(project, ["prepare-data", "--hours", "1"])
    assert result.exit_code == 2
    assert "give --jaeger-url or set ROUTEIQ_TRAINER_JAEGER_URL" in result.output
    args = ["prepare-data", "--jaeger-url", "http://j", "--cheap-model", "a"]
    result = CliRunner().invoke(project, args)
    assert result.exit_code == 2
    assert "--cheap-model and --strong-model go together" in result.output
