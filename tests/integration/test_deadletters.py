"""Dead letters against the real broker and registry: one per source position, also when a
restarted consumer (a new sink) replays records it already dead-lettered."""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition
from routeiq.contracts.records import DeadLetter
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import DEAD_LETTERS
from routeiq.deadletters import DeadLetterSink
from routeiq.kafka import make_consumer, make_producer
from support.kafka import read_messages

pytestmark = pytest.mark.integration


def _letter(offset: int, consumer: str) -> DeadLetter:
    return DeadLetter.of(
        topic="routeiq.router_decision.v1",
        partition=1,
        offset=offset,
        timestamp_ms=None,
        key=None,
        value=b"\x00garbage",
        headers=None,
        error_type="SerializationError",
        reason="garbage",
        consumer=consumer,
        now_ms=1,
    )


def _sink(stack, registry_client, topic: str, consumer: str) -> DeadLetterSink:
    return DeadLetterSink(
        producer=make_producer(stack.kafka, client_id=consumer),
        serde=AvroSerde.for_topic(
            DEAD_LETTERS.contract,
            topic,
            resolver=RegistryResolver(registry_client, auto_register=True),
        ),
        topic=topic,
        consumer=consumer,
    )


def _reader(stack, unique):
    return make_consumer(stack.kafka, group_id=unique("recall"), client_id="recall-test")


def test_a_restarted_consumer_recalls_its_dead_letters_and_writes_no_second_one(
    stack, registry_client, topic_factory, unique
) -> None:
    topic = topic_factory(DEAD_LETTERS).name
    first = _sink(stack, registry_client, topic, "labeler")
    for offset in (5, 6, 7):
        assert first.send_letter(_letter(offset, "labeler")) is not None
    first.flush(30)
    # Another consumer's dead letter for the same record is its own.
    other = _sink(stack, registry_client, topic, "analytics")
    assert other.send_letter(_letter(5, "analytics")) is not None
    other.flush(30)

    restarted = _sink(stack, registry_client, topic, "labeler")
    assert restarted.recall(_reader(stack, unique), timeout_s=60) == 3
    assert restarted.send_letter(_letter(6, "labeler")) is None  # the replay writes nothing
    assert restarted.send_letter(_letter(8, "labeler")) is not None
    restarted.flush(30)

    reader = _reader(stack, unique)
    reader.assign([TopicPartition(topic, p, 0) for p in range(DEAD_LETTERS.partitions)])
    keys = sorted(m.key() for m in read_messages(reader, 5, timeout=60))
    reader.close()
    assert keys == [
        b"routeiq.router_decision.v1/1/5",
        b"routeiq.router_decision.v1/1/5",
        b"routeiq.router_decision.v1/1/6",
        b"routeiq.router_decision.v1/1/7",
        b"routeiq.router_decision.v1/1/8",
    ]


def test_recall_on_an_empty_topic_finds_nothing(stack, registry_client, topic_factory, unique):
    topic = topic_factory(DEAD_LETTERS).name
    sink = _sink(stack, registry_client, topic, "trainer")
    assert sink.recall(_reader(stack, unique), timeout_s=60) == 0
