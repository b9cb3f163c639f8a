"""The shard sink against real S3, and `routeiq retrain request` against real Kafka and S3."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from integration.labeler.helpers import consume
from routeiq.contracts.retrain import retrain_request_id
from routeiq.labeling import DecisionFacts, LabelPolicy
from routeiq.shards import list_manifests, read_manifest, read_shard, shard_keys
from routeiq_cli.retrain import retrain
from routeiq_labeler.core.state import FlushPlan
from routeiq_labeler.sink import ShardSink
from support.records import labeler_facts

pytestmark = pytest.mark.integration

WINDOW = 1_763_028_000_000


def _facts(decision_id: str, *, embedding: bytes | None = None) -> DecisionFacts:
    return labeler_facts(decision_id, ts=WINDOW + 5, embedding=embedding)


def _plan(ids, *, late=False, partition=0, graded=()):
    entries = []
    for d in ids:
        items = {f"{d}-f": {"s": 0.5, "c": None, "cost": None}} if d in graded else None
        entries.append((d, {"w": WINDOW, "late": late, "t": 0, "d": _facts(d).to_state()}, items))
    return FlushPlan(partition, WINDOW, WINDOW + 3_600_000, late, tuple(entries))


@pytest.fixture
def sink(store, bucket) -> ShardSink:
    return ShardSink(store=store, bucket=bucket, policy=LabelPolicy(), clock_ms=lambda: 42)


def test_rewriting_a_window_produces_the_same_object(sink, store, bucket) -> None:
    first = sink.write(_plan(["c", "a", "b"]))
    again = sink.write(_plan(["b", "c", "a"]))
    assert first.manifest is not None
    assert again.manifest is not None
    assert first.manifest.key == shard_keys(WINDOW, 0)[0]
    assert again.manifest.sha256 == first.manifest.sha256
    assert (first.added_rows, again.added_rows) == (3, 0)
    assert list_manifests(store, bucket) == [shard_keys(WINDOW, 0)[1]]


def test_a_rewrite_from_partial_state_keeps_every_row_and_the_best_label(sink, store, bucket):
    sink.write(_plan(["a", "b", "c"], graded={"b"}))
    # After a crash the recovered state holds only b, without its feedback.
    result = sink.write(_plan(["b"]))
    assert result.added_rows == 0
    assert result.labeled_rows == 0  # b's label is the one already written
    manifest = read_manifest(store, bucket, shard_keys(WINDOW, 0)[1])
    rows = {r["decision_id"]: r for r in read_shard(store, bucket, manifest).to_pylist()}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["b"]["feedback_count"] == 1
    assert rows["b"]["quality_source"] == "feedback"


def test_only_labelled_rows_count_as_new_training_examples(store, bucket) -> None:
    # quality_source=feedback: a decision nobody graded is a row without a label.
    sink = ShardSink(
        store=store,
        bucket=bucket,
        policy=LabelPolicy(quality_source="feedback"),
        clock_ms=lambda: 42,
    )
    first = sink.write(_plan(["a", "b", "c"], graded={"a"}))
    assert (first.added_rows, first.labeled_rows) == (3, 1)
    # c's feedback arrives after the first write: the rewrite turns it into an example.
    again = sink.write(_plan(["c"], graded={"c"}))
    assert (again.added_rows, again.labeled_rows) == (0, 1)


def test_late_rows_accumulate_without_what_the_regular_shard_holds(sink, store, bucket) -> None:
    sink.write(_plan(["a", "b"]))
    result = sink.write(_plan(["b", "x"], late=True))  # b is a replay, x is late
    assert (result.duplicates, result.added_rows) == (1, 1)
    result = sink.write(_plan(["y"], late=True))
    late_manifest = read_manifest(store, bucket, shard_keys(WINDOW, 0, late=True)[1])
    assert late_manifest.late
    assert late_manifest.rows == 2
    late_rows = read_shard(store, bucket, late_manifest).to_pylist()
    assert sorted(r["decision_id"] for r in late_rows) == ["x", "y"]
    assert all(r["late"] for r in late_rows)
    # Only replays: nothing to write.
    assert sink.write(_plan(["a"], late=True)).manifest is None


def test_rows_without_an_embedding_round_trip_as_null(sink, store, bucket) -> None:
    plan = _plan(["with", "without"])
    entries = list(plan.entries)
    with_emb = _facts("with", embedding=bytes(384 * 4)).to_state()
    entries[0] = ("with", {**entries[0][1], "d": with_emb}, None)
    sink.write(FlushPlan(0, WINDOW, WINDOW + 1, False, tuple(entries)))
    manifest = read_manifest(store, bucket, shard_keys(WINDOW, 0)[1])
    rows = {r["decision_id"]: r for r in read_shard(store, bucket, manifest).to_pylist()}
    assert rows["without"]["embedding"] is None
    assert rows["with"]["embedding"] == [0.0] * 384


def test_retrain_request_from_the_cli_is_idempotent_by_shard_set(
    stack, sink, store, bucket, labeler_topics
) -> None:
    sink.write(_plan([f"p0-{i}" for i in range(3)]))
    sink.write(_plan([f"p1-{i}" for i in range(2)], partition=1))
    manifests = list_manifests(store, bucket)
    topic = labeler_topics.retrain.name
    args = [
        "request",
        "--bucket",
        bucket,
        "--topic",
        topic,
        "--model",
        "router-cli",
        "--router-type",
        "mlp",
        "--router-type",
        "knn",
        "--param",
        "epochs=3",
    ]
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(retrain, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    one = runner.invoke(retrain, [*args, "--manifest", manifests[0]])
    assert one.exit_code == 0, one.output
    got = consume(stack, topic, labeler_topics.serdes["retrain"], count=3)
    (m1, r1), (_, r2), (_, r3) = sorted(got, key=lambda mr: mr[0].offset())
    expected_id = retrain_request_id(
        "router-cli",
        ["knn", "mlp"],
        [(k, read_manifest(store, bucket, k).sha256) for k in manifests],
    )
    assert r1["request_id"] == r2["request_id"] == expected_id
    assert r1["reason"] == "MANUAL"
    assert m1.key() == b"router-cli"
    assert r1["shard_manifests"] == manifests
    assert r1["example_count"] == 5
    assert r1["params"] == {"epochs": "3"}
    assert r1["router_types"] == ["knn", "mlp"]
    assert r3["shard_manifests"] == [manifests[0]]
    assert r3["request_id"] != expected_id
    assert r3["example_count"] == 3


def test_retrain_request_with_no_shards_is_refused(bucket) -> None:
    result = CliRunner().invoke(
        retrain, ["request", "--bucket", bucket, "--topic", f"t-{uuid.uuid4().hex}"]
    )
    assert result.exit_code == 1
    assert "no shard manifests" in result.output
