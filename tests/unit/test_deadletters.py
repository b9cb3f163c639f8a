"""The dead-letter sink: the builder's record on the wire, delivery confirmed, each source
position dead-lettered once (also across a restart, through ``recall``)."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest
from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.contracts.catalog import DEAD_LETTER
from routeiq.contracts.records import CONSUMER_HEADER
from routeiq.contracts.serde import AvroSerde
from routeiq.deadletters import DeadLetterSink, source_position
from routeiq.errors import TransportError
from support.kafka import FakeMessage


def _message(offset: int = 9, timestamp: tuple[int, int] = (1, 5)) -> FakeMessage:
    return FakeMessage(
        topic_="src", partition_=3, offset_=offset, value_=b"x", timestamp_=timestamp
    )


class _Producer:
    """confluent-kafka's Producer surface the sink uses; delivery reported at flush."""

    def __init__(self, fail: str | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes, dict[str, bytes]]] = []
        self._pending: list[Any] = []
        self.fail = fail

    def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: dict[str, bytes], on_delivery: Any
    ) -> None:
        self.sent.append((topic, key, value, headers))
        self._pending.append(on_delivery)

    def flush(self, _timeout: float) -> int:
        for callback in self._pending:
            callback(self.fail, None)
        self._pending.clear()
        return 0


class _FixedId:
    def id_for(self, _subject: str, _schema_text: str) -> int:
        return 1


def _sink(producer: _Producer, consumer: str = "c") -> DeadLetterSink:
    serde = AvroSerde.for_contract(DEAD_LETTER, subject="dl-value", resolver=_FixedId())
    return DeadLetterSink(
        producer=producer,  # type: ignore[arg-type]
        serde=serde,
        topic="dl",
        consumer=consumer,
        clock=lambda: 2.0,
    )


def test_the_sink_produces_the_builder_record_keyed_by_source_position() -> None:
    producer = _Producer()
    letter = _sink(producer).send(_message(), ValueError("bad"))
    assert letter is not None
    assert letter.failed_at_ms == 2000
    ((topic, key, value, headers),) = producer.sent
    assert (topic, key) == ("dl", b"src/3/9")
    assert headers == {CONSUMER_HEADER: b"c"}
    assert value[:5] == b"\x00\x00\x00\x00\x01"  # magic byte, schema id 1
    schema = fastavro.parse_schema(json.loads(DEAD_LETTER.working_text()))
    decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)  # type: ignore[call-arg]
    assert isinstance(decoded, dict)
    assert (decoded["source_offset"], decoded["value"]) == (9, b"x")
    assert (decoded["error_type"], decoded["reason"]) == ("ValueError", "bad")


def test_flush_reports_failed_delivery_and_the_retry_sends_again() -> None:
    producer = _Producer(fail="broker down")
    sink = _sink(producer)
    sink.send(_message(), error_type="X", reason="y")
    with pytest.raises(TransportError, match=r"not acknowledged.*broker down"):
        sink.flush(1.0)
    assert not sink.has_written("src", 3, 9)
    # The consumer did not commit, re-reads the record and dead-letters it again: once more.
    producer.fail = None
    assert sink.send(_message(), error_type="X", reason="y") is not None
    sink.flush(1.0)
    assert sink.has_written("src", 3, 9)
    assert len(producer.sent) == 2


def test_a_source_position_is_dead_lettered_once() -> None:
    producer = _Producer()
    sink = _sink(producer)
    assert sink.send(_message(9), ValueError("a")) is not None
    assert sink.send(_message(9), ValueError("a")) is None  # queued, not yet acknowledged
    sink.flush(1.0)
    assert sink.send(_message(9), ValueError("a")) is None  # acknowledged
    assert sink.send(_message(10), ValueError("a")) is not None
    assert [key for _, key, _, _ in producer.sent] == [b"src/3/9", b"src/3/10"]


@settings(max_examples=100, deadline=None)
@given(
    topic=st.from_regex(r"[a-zA-Z0-9._-]{1,249}", fullmatch=True),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**63 - 1),
)
def test_source_position_reads_back_every_key_the_sink_writes(topic, partition, offset) -> None:
    key = f"{topic}/{partition}/{offset}".encode()
    assert source_position(key) == (topic, partition, offset)


@pytest.mark.parametrize("key", [None, b"", b"src", b"a/b/c", b"\xff/1/2"])
def test_keys_in_another_form_name_no_position(key) -> None:
    assert source_position(key) is None


class _EmptyTopicReader:
    """A reader of an empty dead-letter topic whose first offset lookups fail with ``errors``
    (a topic created a moment ago has no partition leader yet)."""

    def __init__(self, *errors: KafkaError) -> None:
        self.errors = list(errors)
        self.lookups = 0
        self.closed = False

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = SimpleNamespace(partitions={0: None}, error=None)
        return SimpleNamespace(topics={topic: meta})

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float) -> Any:
        self.lookups += 1
        if self.errors:
            raise KafkaException(self.errors.pop(0))
        return [TopicPartition(p.topic, p.partition, OFFSET_END) for p in partitions]

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        return (0, 0)

    def close(self) -> None:
        self.closed = True


def test_recall_waits_out_a_new_topic_without_a_leader() -> None:
    reader = _EmptyTopicReader(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
    assert _sink(_Producer()).recall(reader, timeout_s=5) == 0  # type: ignore[arg-type]
    assert reader.lookups == 2
    assert reader.closed


def test_recall_reports_a_lasting_error_as_a_transport_error() -> None:
    reader = _EmptyTopicReader(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    with pytest.raises(TransportError, match="cannot read back dl"):
        _sink(_Producer()).recall(reader, timeout_s=5)  # type: ignore[arg-type]
    assert reader.lookups == 1
    assert reader.closed
