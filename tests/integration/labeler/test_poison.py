"""Every poison kind on both input topics: one dead letter each, the worker keeps labelling,
and a replay after a restart (offsets forgotten) writes no second dead letter."""

from __future__ import annotations

from collections import Counter

import pytest
from integration.labeler.helpers import (
    dead_letter_keys,
    decision,
    delete_group,
    feedback,
    now_ms,
    shard_rows,
    wait_for,
)

pytestmark = pytest.mark.integration

SETTINGS = {
    "window_size_s": 2,
    "allowed_lateness_s": 0,
    "feedback_ttl_s": 20,
    "quality_source": "feedback",
}


def _poison(topics, good: dict, *, on_decisions: bool) -> dict[str, bytes | None]:
    """Every kind of /work/brief/poison.md for one topic, as values (keyed like the good
    record, so they share its partition and come before it)."""
    decisions, feedbacks = topics.serdes["decisions"], topics.serdes["feedback"]
    if on_decisions:
        own = decisions.encode(good)
        other = feedbacks.encode(feedback(good["event_id"], 0.5))
        breaks_contract = decisions.encode({**good, "selected_deployment": ""})
    else:
        own = feedbacks.encode(feedback(good["event_id"], 0.5))
        other = decisions.encode(good)
        breaks_contract = feedbacks.encode({**feedback(good["event_id"], 0.5), "score": 1.5})
    return {
        "garbage": b"not avro at all",
        "empty": b"",
        "none": None,
        "truncated": own[: len(own) // 2],
        "unknown id": b"\x00\x7f\xff\xff\xf0" + own[5:],
        "another contract's id": other,
        "fails the contract": breaks_contract,
    }


def _inject(events, topics, good: dict) -> dict[str, tuple[str, int, int]]:
    key = good["event_id"].encode()
    for topic, on_decisions in ((topics.decisions.name, True), (topics.feedback.name, False)):
        for kind, value in _poison(topics, good, on_decisions=on_decisions).items():
            events.raw(topic, key, value, tag=f"{topic}: {kind}")
    events.flush()
    return dict(events.positions)


def _labelled(store, bucket, decision_id: str) -> dict:
    def row():
        for rows in shard_rows(store, bucket).values():
            for r in rows:
                if r["decision_id"] == decision_id:
                    return r
        return None

    return wait_for(row, timeout=60, what=f"decision {decision_id} in a shard")


def _position_key(position: tuple[str, int, int]) -> bytes:
    return "/".join(map(str, position)).encode()


def test_every_poison_kind_is_dead_lettered_once_and_a_replay_writes_no_second(
    stack, admin, labeler_factory, labeler_topics, events, store, bucket, unique
) -> None:
    app_id = unique("labeler")
    worker = labeler_factory(app_id=app_id, **SETTINGS)
    worker.wait_ready()
    good = decision(ts=now_ms())
    positions = _inject(events, labeler_topics, good)
    assert len(positions) == 14
    # Feedback that decodes but breaks the state's rule: at most 64 per decision.
    crowded = decision(ts=now_ms())
    events.decision(crowded)
    for _ in range(64):
        events.feedback(feedback(crowded["event_id"], 0.5))
    extra = labeler_topics.serdes["feedback"].encode(feedback(crowded["event_id"], 0.5))
    events.raw(labeler_topics.feedback.name, crowded["event_id"].encode(), extra, tag="65th")
    events.flush()
    positions = dict(events.positions)
    events.decision(good)
    events.feedback(feedback(good["event_id"], 0.8))
    events.flush()

    # The good pair comes after every poison record of its partitions: once it is in a
    # shard, each of them was dead-lettered (flushed before the next record was taken).
    row = _labelled(store, bucket, good["event_id"])
    assert (row["quality"], row["quality_source"], row["feedback_count"]) == (0.8, "feedback", 1)
    deadletter = labeler_topics.deadletter.name
    wait_for(
        lambda: len(dead_letter_keys(stack, deadletter)) >= len(positions),
        timeout=30,
        what="a dead letter for each poison record",
    )
    keys = Counter(dead_letter_keys(stack, deadletter))
    assert keys == Counter(_position_key(p) for p in positions.values())
    assert worker.alive(), worker.tail()
    assert worker.metric("routeiq_labeler_dead_lettered_total") == 15
    status = worker.status()
    assert status is not None
    assert status["ready"]
    assert status["state"] == "ok"
    assert status["dependencies"] == {name: {"up": True} for name in ("kafka", "s3", "registry")}
    assert worker.metric('routeiq_dependency_up{dependency="kafka"}') == 1
    log = worker.tail(10_000)
    assert "Traceback" not in log
    assert "SchemaResolutionError" not in log

    # Restart with the group's offsets gone: the whole topics are read again.
    worker.stop()
    assert worker.wait(timeout=1) == 0, worker.tail()
    delete_group(admin, app_id)
    again = labeler_factory(app_id=app_id, **SETTINGS)
    again.wait_ready()
    after = decision(ts=now_ms())
    events.decision(after)
    events.feedback(feedback(after["event_id"], 0.3))
    events.flush()
    assert _labelled(store, bucket, after["event_id"])["quality"] == 0.3
    # 14 poison records, 1 + 65 for the crowded decision, two pairs: every one read again.
    # At least once: a rebalance while the new consumer joins may hand it a record twice.
    seen: list[float] = []

    def replayed() -> bool:
        seen.append(again.metric("routeiq_labeler_events_in_total"))
        return seen[-1] >= 84

    try:
        wait_for(replayed, timeout=60, what="every record replayed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {seen[-1]:.0f} of 84 records read") from None
    assert again.metric('routeiq_labeler_events_in_total{kind="decision"}') >= 10
    assert Counter(dead_letter_keys(stack, deadletter)) == keys
    assert again.metric("routeiq_labeler_dead_lettered_total") == 0
    assert again.alive(), again.tail()
