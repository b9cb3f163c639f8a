"""The labeler worker as a process against the real Kafka, registry and S3.

Each test starts ``python -m routeiq_labeler`` on private topics, a private bucket and its own
app id, with seconds-long windows, produces Avro records with our serde and polls S3 (with a
deadline) for the shards.
"""

from __future__ import annotations

import math
import random
import signal

import numpy as np
import pytest
from integration.labeler.helpers import (
    MODELS,
    consume,
    decision,
    feedback,
    now_ms,
    shard_rows,
    wait_for,
)
from routeiq.contracts.retrain import retrain_request_id
from routeiq.shards import list_manifests, read_manifest

pytestmark = pytest.mark.integration

COST_WEIGHT = 2.0


def _rows_by_id(store, bucket) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rows in shard_rows(store, bucket).values():
        for row in rows:
            out.setdefault(row["decision_id"], []).append(row)
    return out


def test_decisions_with_feedback_become_one_labelled_row_each(
    stack, labeler_factory, labeler_topics, events, store, bucket
) -> None:
    rng = random.Random(5)
    worker = labeler_factory(
        window_size_s=3,
        allowed_lateness_s=0.5,
        feedback_ttl_s=2,
        cost_weight=COST_WEIGHT,
        quality_source="feedback_or_outcome",
        retrain_threshold=40,
        retrain_interval_s=0,
        retrain_model_name="router-it",
        retrain_router_types='["mlp","knn"]',
    )
    worker.wait_ready()

    expected: dict[str, dict] = {}  # decision id -> expected label fields
    sent: dict[str, dict] = {}
    ts = now_ms()

    def add(record, quality, source, outcomes, count):
        sent[record["event_id"]] = record
        expected[record["event_id"]] = {
            "quality": quality,
            "quality_source": source,
            "outcomes": outcomes,
            "feedback_count": count,
        }

    # Graded by one judge.
    for i in range(10):
        d = decision(ts=ts + i, embedding=[rng.uniform(-1, 1) for _ in range(384)])
        events.decision(d)
        events.feedback(feedback(d["event_id"], 0.25 + i / 20))
        add(d, 0.25 + i / 20, "feedback", {MODELS[0]: 0.25 + i / 20}, 1)
    # Graded twice (mean) and with a shadow outcome for the other candidate: full information.
    for i in range(10):
        d = decision(ts=ts + 100 + i, selected=MODELS[1], exploration=True, cost=0.001)
        events.decision(d)
        events.feedback(feedback(d["event_id"], 0.2))
        events.feedback(feedback(d["event_id"], 0.6))
        events.feedback(feedback(d["event_id"], 0.9, candidate=MODELS[0], cost=0.03))
        add(d, 0.4, "feedback", {MODELS[1]: 0.4, MODELS[0]: 0.9}, 3)
    # Feedback produced before its decision.
    for i in range(5):
        d = decision(ts=ts + 200 + i)
        events.feedback(feedback(d["event_id"], 0.7))
        events.flush()
        events.decision(d)
        add(d, 0.7, "feedback", {MODELS[0]: 0.7}, 1)
    # No feedback: the outcome labels them once the TTL has passed.
    for i in range(10):
        d = decision(ts=ts + 300 + i)
        events.decision(d)
        add(d, 1.0, "outcome", {MODELS[0]: 1.0}, 0)
    for i in range(5):
        d = decision(ts=ts + 400 + i, status="ERROR", cost=None)
        events.decision(d)
        add(d, 0.0, "outcome", {MODELS[0]: 0.0}, 0)
    events.flush()

    def complete():
        rows = _rows_by_id(store, bucket)
        return rows if set(rows) == set(expected) else None

    rows = wait_for(complete, timeout=60, what="every decision in a shard")
    # Exactly one row per decision, across every shard.
    assert {d: len(r) for d, r in rows.items()} == dict.fromkeys(expected, 1)
    for decision_id, want in expected.items():
        row = rows[decision_id][0]
        d = sent[decision_id]
        assert row["quality"] == pytest.approx(want["quality"])
        assert row["quality_source"] == want["quality_source"]
        cost = d["outcome"]["cost_usd"]
        assert row["reward"] == pytest.approx(want["quality"] - COST_WEIGHT * (cost or 0.0))
        assert row["feedback_count"] == want["feedback_count"]
        assert row["selected_model"] == d["selected_deployment"]
        assert row["outcome_models"][0] == d["selected_deployment"]
        assert dict(zip(row["outcome_models"], row["outcome_qualities"], strict=True)) == (
            pytest.approx(want["outcomes"])
        )
        served = next(
            c for c in d["candidate_deployments"] if c["model_name"] == d["selected_deployment"]
        )
        assert row["propensity"] == pytest.approx(served["propensity"])
        assert row["exploration"] == d["exploration"]
        assert row["candidate_models"] == list(MODELS)
        assert row["late"] is False
        if d["query_embedding"] is None:
            assert row["embedding"] is None
        else:
            np.testing.assert_array_equal(
                np.asarray(row["embedding"], dtype=np.float32),
                np.asarray(d["query_embedding"], dtype=np.float32),
            )
    shadowed = [r[0] for r in rows.values() if r[0]["feedback_count"] == 3]
    assert all(r["outcome_costs"] == pytest.approx([0.001, 0.03]) for r in shadowed)

    # 50 examples with a threshold of 40: one retrain request naming every shard.
    (message, request), *_ = consume(
        stack, labeler_topics.retrain.name, labeler_topics.serdes["retrain"], count=1
    )
    manifests = list_manifests(store, bucket)
    assert message.key() == b"router-it"
    assert request["reason"] == "THRESHOLD"
    assert request["router_types"] == ["knn", "mlp"]
    assert request["shard_manifests"] == manifests
    assert request["example_count"] == len(expected)
    assert request["request_id"] == retrain_request_id(
        "router-it",
        ["knn", "mlp"],
        [(k, read_manifest(store, bucket, k).sha256) for k in manifests],
    )

    assert worker.metric("routeiq_labeler_labeled_total") == len(expected)
    assert worker.metric('routeiq_labeler_events_in_total{kind="decision"}') == len(expected)
    assert worker.metric("routeiq_labeler_shards_written_total") == len(manifests)
    assert worker.metric('routeiq_labeler_retrain_requests_total{reason="THRESHOLD"}') == 1

    # SIGTERM: a clean stop, exit status 0.
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.tail()


def test_poison_records_are_dead_lettered_and_the_worker_keeps_going(
    stack, labeler_factory, labeler_topics, events, store, bucket
) -> None:
    worker = labeler_factory(window_size_s=2, allowed_lateness_s=0, quality_source="outcome")
    worker.wait_ready()
    ts = now_ms()
    decisions_topic = labeler_topics.decisions.name
    events.raw(decisions_topic, b"k1", b"not avro at all", partition=1, tag="garbage")
    events.raw(decisions_topic, b"k2", b"\x00\x7f\xff\xff\xf0rest", partition=2, tag="unknown-id")
    good = decision(ts=ts)
    events.decision(good, key=b"some-other-key", partition=3, tag="wrong-key")
    bad_score = feedback(good["event_id"], 0.5)
    bad_score["score"] = 1.5
    events.raw(
        labeler_topics.feedback.name,
        good["event_id"].encode(),
        labeler_topics.serdes["feedback"].encode(bad_score),
        partition=4,
        tag="bad-score",
    )
    events.flush()
    letters = consume(
        stack, labeler_topics.deadletter.name, labeler_topics.serdes["deadletter"], count=4
    )
    by_origin = {
        (r["source_topic"], r["source_partition"], r["source_offset"]): r for _, r in letters
    }
    assert set(by_origin) == set(events.positions.values())
    reasons = {tag: by_origin[pos]["reason"] for tag, pos in events.positions.items()}
    assert "magic byte" in reasons["garbage"]
    assert "schema id" in reasons["unknown-id"]
    assert "not the decision id" in reasons["wrong-key"]
    assert "score=1.5" in reasons["bad-score"]
    assert by_origin[events.positions["garbage"]]["value"] == b"not avro at all"
    assert by_origin[events.positions["garbage"]]["key"] == b"k1"
    assert all(r["consumer"].startswith("routeiq-labeler/") for _, r in letters)
    # Keyed by source position, so a replay can tell it was written (issue 12).
    assert all(
        m.key() == f"{r['source_topic']}/{r['source_partition']}/{r['source_offset']}".encode()
        for m, r in letters
    )

    # Alive and still labelling.
    assert worker.alive()
    after = [decision(ts=now_ms() + i) for i in range(6)]
    for d in after:
        events.decision(d)
    events.flush()
    rows = wait_for(
        lambda: (r := _rows_by_id(store, bucket)) and set(r) >= {d["event_id"] for d in after},
        timeout=45,
        what="decisions after the poison records",
    )
    assert good["event_id"] not in _rows_by_id(store, bucket)
    assert rows
    assert worker.metric("routeiq_labeler_dead_lettered_total") == 4


def test_late_decisions_go_to_the_late_shard(
    stack, labeler_factory, labeler_topics, events, store, bucket
) -> None:
    window = 2000
    worker = labeler_factory(
        window_size_s=window / 1000, allowed_lateness_s=1, quality_source="outcome"
    )
    worker.wait_ready()
    # One partition, so the order the worker sees events in is the order they are produced.
    t0 = (now_ms() // window) * window - 20 * window
    on_time = [decision(ts=t0 + 10 * i) for i in range(5)]
    advance = decision(ts=t0 + 3 * window)  # watermark - lateness passes the end of t0's window
    late = [decision(ts=t0 + 500 + i) for i in range(3)]
    for d in [*on_time, advance, *late]:
        events.decision(d, partition=0)
    events.flush()

    def late_shard():
        rows = shard_rows(store, bucket)
        late_keys = [k for k in rows if "/late/" in k]
        return (late_keys, rows) if late_keys else None

    late_keys, rows = wait_for(late_shard, timeout=45, what="a late shard")
    assert late_keys == [
        f"shards/router_decision.v1/late/{_day(t0)}/window={t0}/part-0.manifest.json"
    ]
    assert {r["decision_id"] for r in rows[late_keys[0]]} == {d["event_id"] for d in late}
    assert all(r["late"] for r in rows[late_keys[0]])
    regular = rows[f"shards/router_decision.v1/{_day(t0)}/window={t0}/part-0.manifest.json"]
    assert {r["decision_id"] for r in regular} == {d["event_id"] for d in on_time}
    assert not any(r["late"] for r in regular)

    # A later late event: the late shard is rewritten whole, never a second object.
    straggler = decision(ts=t0 + 1999)
    events.decision(straggler, partition=0)
    events.flush()
    wait_for(
        lambda: len(shard_rows(store, bucket)[late_keys[0]]) == 4,
        timeout=30,
        what="the straggler in the late shard",
    )
    every = {d["event_id"] for d in [*on_time, advance, *late, straggler]}

    def everything_written():
        rows = _rows_by_id(store, bucket)
        return rows if set(rows) == every else None

    all_rows = wait_for(everything_written, timeout=30, what="the idle partition's last window")
    assert all(len(r) == 1 for r in all_rows.values())
    assert worker.metric("routeiq_labeler_late_events_total") == 4


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return "dt=" + datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def test_kill_9_mid_window_then_restart_each_decision_in_exactly_one_shard(
    stack, labeler_factory, events, store, bucket, unique
) -> None:
    window = 3000
    settings = dict(
        window_size_s=window / 1000,
        allowed_lateness_s=0.5,
        feedback_ttl_s=1,
        # Offsets are not committed before the kill: everything is replayed after restart,
        # including decisions whose shards were already written.
        commit_interval_s=120,
    )
    app_id = unique("labeler-kill")
    worker = labeler_factory(app_id=app_id, **settings)
    worker.wait_ready()
    now = now_ms()
    old = [decision(ts=now - 4 * window + 37 * i) for i in range(80)]  # closed windows
    current = [decision(ts=now + i) for i in range(40)]  # the open window
    for d in [*old, *current]:
        events.decision(d)
        events.feedback(feedback(d["event_id"], 0.5))
    events.flush()
    # Kill as soon as the first shards are in S3: some written, others pending, the current
    # window open and buffered.
    wait_for(lambda: list_manifests(store, bucket), timeout=45, interval=0.1, what="a shard")
    worker.signal(signal.SIGKILL)
    worker.wait(timeout=10)

    more = [decision(ts=now_ms() + i) for i in range(40)]
    for d in more:
        events.decision(d)
    events.flush()
    restarted = labeler_factory(app_id=app_id, **settings)
    restarted.wait_ready(timeout=90)
    everything = {d["event_id"] for d in [*old, *current, *more]}

    def settled():
        status = restarted.status()
        rows = _rows_by_id(store, bucket)
        if status and status["pending"] == 0 and set(rows) == everything:
            return rows
        return None

    rows = wait_for(settled, timeout=90, what="every decision written after the restart")
    duplicates = {d: len(r) for d, r in rows.items() if len(r) != 1}
    assert not duplicates
    assert sum(len(r) for r in rows.values()) == len(everything)
    graded = {d["event_id"] for d in [*old, *current]}
    assert all(rows[d][0]["quality_source"] == "feedback" for d in graded)
    assert not math.isnan(sum(r[0]["reward"] for r in rows.values()))
