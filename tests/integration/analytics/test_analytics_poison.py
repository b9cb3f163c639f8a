"""Analytics as a process against every poison kind: one dead letter each, the good records
counted, the service running; restarts that replay the poison (below the committed offset,
and with nothing committed, as after a crash) start fine and write no second dead letter."""

from __future__ import annotations

import struct
import time
from collections import Counter

import httpx
import pytest
from confluent_kafka import Message, TopicPartition
from integration.analytics.helpers import (
    AnalyticsHandle,
    AnalyticsTopics,
    consume_all,
    decision_record,
    feedback_record,
)
from routeiq.contracts.records import CONSUMER_HEADER
from routeiq.kafka import make_consumer
from routeiq.routing.datasets import GPT4, MIXTRAL

pytestmark = pytest.mark.integration


def _inject(topics: AnalyticsTopics, now: float) -> tuple[list[Message], list[Message]]:
    """Every poison kind on both topics between good records; (poison, good) as delivered."""
    good_decision = topics.decision_serde.encode(decision_record("d-x", at=now, model=GPT4))
    good_feedback = topics.feedback_serde.encode(feedback_record("f-x", "d-x", 1.0))
    never_issued = struct.pack(">bI", 0, 2_000_000_000) + b"\x02\x04"
    good = [topics.decision(decision_record("d1", at=now - 30, model=GPT4))]
    poison: list[Message] = []
    for topic, truncated, other_contract, breaks_rules in (
        (
            topics.decisions_topic,
            good_decision[:12],
            good_feedback,  # a real registered id, of Feedback, on the decisions topic
            topics.decision_serde.encode(
                decision_record("d-neg", at=now, model=GPT4, input_tokens=-5)
            ),
        ),
        (
            topics.feedback_topic,
            good_feedback[:8],
            good_decision,  # a RouterDecision id on the feedback topic
            topics.feedback_serde.encode(feedback_record("f-bad", "d1", 1.5)),
        ),
    ):
        for value in (
            b"\x7bnot avro at all",  # garbage
            b"",  # empty value
            None,  # no value
            truncated,
            never_issued,
            other_contract,
            breaks_rules,
        ):
            poison.append(topics.raw(topic, b"d1", value))
    good.append(topics.decision(decision_record("d2", at=now - 20, model=MIXTRAL)))
    good.append(topics.feedback(feedback_record("f1", "d1", 1.0)))
    return poison, good


def _position(message: Message) -> bytes:
    return f"{message.topic()}/{message.partition()}/{message.offset()}".encode()


def _letters(stack, topics: AnalyticsTopics) -> Counter[bytes]:
    """Dead-letter keys (source positions) on the private dead-letter topic, with counts."""
    return Counter(
        m.key() for m, _ in consume_all(stack, topics.deadletter_topic, topics.deadletter_serde)
    )


def _ready(service: AnalyticsHandle) -> dict:
    r = httpx.get(f"{service.url}/health/ready", timeout=10)
    assert r.status_code == 200, r.text
    body = dict(r.json())
    assert body["status"] == "ready", body
    assert body["dependencies"] == {"kafka": {"up": True}, "registry": {"up": True}}
    return body


def test_every_poison_kind_is_dead_lettered_once_also_across_replaying_restarts(
    stack, analytics_topics: AnalyticsTopics, analytics_factory
) -> None:
    topics = analytics_topics
    service = analytics_factory()
    poison, good = _inject(topics, time.time())
    n = len(poison)

    s = service.wait_for(
        lambda s: (
            s["pipeline"]["dead_lettered"] == n
            and s["requests"]["total"] == 2
            and s["quality"]["overall"]["count"] == 1
        ),
        what=f"{n} dead letters, 2 decisions and 1 grade",
    )
    assert s["requests"]["by_model"] == {GPT4: 1, MIXTRAL: 1}
    assert s["pipeline"]["poison_replayed"] == 0
    assert service.process.alive()
    _ready(service)

    letters = consume_all(stack, topics.deadletter_topic, topics.deadletter_serde)
    assert Counter(m.key() for m, _ in letters) == Counter(_position(p) for p in poison)
    by_key = {m.key(): (m, letter) for m, letter in letters}
    for source in poison:
        message, letter = by_key[_position(source)]
        assert letter["value"] == source.value()
        assert letter["consumer"] == f"routeiq-analytics/{service.group_id}"
        assert (CONSUMER_HEADER, letter["consumer"].encode()) in (message.headers() or [])
        assert letter["error_type"] in {"SerializationError", "InvalidRecordError"}
    reasons = [letter["reason"] for _, letter in letters]
    assert sum("does not resolve to" in r for r in reasons) == 2  # the other contract's ids
    # Short lines (a burst of one template is folded by the service's RepeatFilter: the
    # dead letters and the metric are the per-record account); no schema is ever dumped.
    lines = service.process.log.read_text().splitlines()
    logged = [line for line in lines if "dead-lettered" in line]
    assert 1 <= len(logged) <= n
    assert max(len(line) for line in logged) < 500
    assert not any('"fields"' in line or "'fields'" in line for line in lines)
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    assert 'routeiq_dependency_up{dependency="kafka"} 1.0' in text
    counted = sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("routeiq_analytics_dead_lettered_total{")
    )
    assert counted == n

    # Restart: the start-up replay reads every poison record again, below the committed offset.
    assert service.process.stop() == 0
    again = analytics_factory(group_id=service.group_id)
    rebuilt = again.wait_for(
        lambda r: r["requests"]["total"] == 2 and r["pipeline"]["poison_replayed"] == n,
        what="the rebuilt window with every poison record read again",
    )
    assert rebuilt["pipeline"]["dead_lettered"] == 0
    assert rebuilt["quality"]["overall"]["count"] == 1
    _ready(again)
    assert _letters(stack, topics) == Counter(_position(p) for p in poison)

    # As after a crash between the dead letters' flush and the commit: nothing committed, so
    # only the dead letters read back at start keep the re-read from writing them again.
    assert again.process.stop() == 0
    rewind = make_consumer(stack.kafka, group_id=service.group_id, client_id="test-rewind")
    used = [TopicPartition(t, p) for t, p in {(m.topic(), m.partition()) for m in poison + good}]
    try:
        rewind.commit(offsets=[TopicPartition(tp.topic, tp.partition, 0) for tp in used],
                      asynchronous=False)  # fmt: skip
        assert {tp.offset for tp in rewind.committed(used, timeout=10)} == {0}
    finally:
        rewind.close()
    third = analytics_factory(group_id=service.group_id)
    replayed = third.wait_for(
        lambda r: r["requests"]["total"] == 2 and r["pipeline"]["poison_replayed"] == n,
        what="every poison record re-read above the committed offset",
    )
    assert replayed["pipeline"]["dead_lettered"] == 0
    recalled = f"routeiq-analytics/{service.group_id}: {n} dead letters already written"
    assert recalled in third.process.log.read_text()
    _ready(third)
    assert _letters(stack, topics) == Counter(_position(p) for p in poison)
    assert third.process.alive()
