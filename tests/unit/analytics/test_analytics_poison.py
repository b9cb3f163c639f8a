"""The consumer's poison policy without a broker: every kind of bad record is one dead letter,
flushed before the commit; a replay (below the committed offset, or recalled after a crash)
writes none; Kafka lost is state (one WARNING), not a crash or a line per retry."""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from routeiq.contracts.catalog import DEAD_LETTER, FEEDBACK, ROUTER_DECISION
from routeiq.contracts.records import CONSUMER_HEADER
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependencies
from routeiq_analytics.clients import kafka_error_handler
from routeiq_analytics.consumer import AnalyticsConsumer, Sources
from routeiq_analytics.errors import ConsumerStoppedError
from routeiq_analytics.metrics import AnalyticsMetrics
from routeiq_analytics.poison import REASON_CHARS, PoisonPolicy
from support.records import router_decision
from unit.analytics.helpers import Clock, aggregator

DECISIONS, FEEDBACK_TOPIC, DLQ = "dec", "fb", "dlq"
NAME = "routeiq-analytics/test"


class Message:
    """confluent-kafka's ``Message`` surface the loop and the sink read."""

    def __init__(
        self,
        topic: str,
        offset: int,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        error: KafkaError | None = None,
    ) -> None:
        self._topic, self._offset, self._value = topic, offset, value
        self._key, self._headers, self._error = key, headers, error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_800_000_000_000)

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> KafkaError | None:
        return self._error


class Producer:
    """The dead-letter producer: delivery reported at flush, failing while ``fail`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, bytes]]] = []
        self.fail: str | None = None
        # Flushes and commits in the order they happened (the group consumer adds commits).
        self.events: list[str] = []
        self._pending: list[Any] = []

    def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: dict[str, bytes], on_delivery: Any
    ) -> None:
        assert topic == DLQ
        self.sent.append((key, headers))
        self._pending.append(on_delivery)

    def flush(self, _timeout: float) -> int:
        for callback in self._pending:
            callback(self.fail, None)
        self._pending.clear()
        self.events.append("flush-failed" if self.fail else "flush")
        return 0

    def poll(self, _timeout: float) -> int:
        return 0


class GroupConsumer:
    """The group consumer: committed offsets given by the test, commits recorded."""

    def __init__(self, events: list[str], committed: dict[tuple[str, int], int]) -> None:
        self.events = events
        self.committed_offsets = committed
        self.commits: list[dict[tuple[str, int], int]] = []
        self.down = False

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.events.append("commit")
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.committed_offsets.get((tp.topic, 0), -1001))
            for tp in partitions
        ]

    def offsets_for_times(self, tps: list[TopicPartition], timeout: float) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, 0) for tp in tps]

    def get_watermark_offsets(self, tp: TopicPartition, **_: Any) -> tuple[int, int]:
        return 0, 100

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down"))
        return object()


class DeadLetterReader:
    """What ``DeadLetterSink.recall`` reads: the dead letters ``producer`` wrote, in order."""

    def __init__(self, producer: Producer) -> None:
        self._messages = [
            Message(DLQ, i, b"", key=key, headers=list(headers.items()))
            for i, (key, headers) in enumerate(producer.sent)
        ]
        self.closed = False

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = type("Meta", (), {"partitions": {0: None}, "error": None})()
        return type("Topics", (), {"topics": {topic: meta}})()

    def offsets_for_times(self, tps: list[TopicPartition], timeout: float) -> list[Any]:
        return [TopicPartition(DLQ, 0, 0)]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, len(self._messages)

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def poll(self, _timeout: float) -> Message | None:
        return self._messages.pop(0) if self._messages else None

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(DLQ, 0, 10**9)]

    def close(self) -> None:
        self.closed = True


class Run:
    """One analytics process: its consumer loop, sink and aggregates over shared fakes."""

    def __init__(
        self,
        resolver: LocalResolver,
        producer: Producer,
        *,
        committed: dict[tuple[str, int], int] | None = None,
        reader: DeadLetterReader | None = None,
        decisions: Any = None,
    ) -> None:
        self.events = producer.events
        self.aggregator = aggregator(Clock(), retention_s=3600)
        self.metrics = AnalyticsMetrics()
        self.deps = Dependencies(
            log=logging.getLogger("t.analytics"), registry=self.metrics.registry
        )
        self.sink = DeadLetterSink(
            producer=producer,  # type: ignore[arg-type]
            serde=AvroSerde.for_topic(DEAD_LETTER, DLQ, resolver=resolver),
            topic=DLQ,
            consumer=NAME,
        )
        self.group = GroupConsumer(self.events, committed or {})
        self.loop = AnalyticsConsumer(
            consumer=self.group,  # type: ignore[arg-type]
            sources=Sources(
                decisions_topic=DECISIONS,
                feedback_topic=FEEDBACK_TOPIC,
                decisions=decisions
                or AvroSerde.for_topic(ROUTER_DECISION, DECISIONS, resolver=resolver),
                feedback=AvroSerde.for_topic(FEEDBACK, FEEDBACK_TOPIC, resolver=resolver),
            ),
            aggregator=self.aggregator,
            poison=PoisonPolicy(
                sink=self.sink,
                kafka=self.deps["kafka"],
                aggregator=self.aggregator,
                metrics=self.metrics,
                retry_backoff_s=0.0,
            ),
            recall_reader=lambda: reader,  # type: ignore[arg-type,return-value]
            metrics=self.metrics,
            dependencies=self.deps,
            rebuild_s=3600,
        )
        # Started after a crash: the dead letters already written are read back first.
        self.recalled = 0
        if reader is not None:
            self.recalled = self.loop.poison.recall(
                lambda: reader,  # type: ignore[arg-type,return-value]
                threading.Event(),
            )
        # Partitions assigned: where the replay starts, and which offsets it re-reads.
        self.loop._on_assign(
            self.group,  # type: ignore[arg-type]
            [TopicPartition(DECISIONS, 0), TopicPartition(FEEDBACK_TOPIC, 0)],
        )

    def process(self, messages: list[Message]) -> None:
        self.loop.process(messages, threading.Event())  # type: ignore[arg-type]

    def pipeline(self) -> dict[str, int]:
        return dict(self.aggregator.summary(3600)["pipeline"])

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def _decision(event_id: str, **changes: Any) -> dict[str, Any]:
    return router_decision(event_id=event_id, timestamp_ms=1_800_000_000_000, **changes).to_record()


def _feedback(feedback_id: str, decision_id: str, score: float) -> dict[str, Any]:
    return {
        "feedback_id": feedback_id,
        "decision_id": decision_id,
        "score": score,
        "source": "user",
        "created_at": 1_800_000_000_000,
        "candidate": None,
    }


@pytest.fixture
def resolver() -> LocalResolver:
    return LocalResolver()


def _traffic(resolver: LocalResolver) -> tuple[list[Message], set[tuple[str, int]]]:
    """Every poison kind on both topics, with good records around them; the poison offsets."""
    dec = AvroSerde.for_topic(ROUTER_DECISION, DECISIONS, resolver=resolver)
    fb = AvroSerde.for_topic(FEEDBACK, FEEDBACK_TOPIC, resolver=resolver)
    good = dec.encode(_decision("d1"))
    negative = _decision("d-neg")
    negative["outcome"]["input_tokens"] = -5
    poison_values: list[bytes | None] = [
        b"\x7bnot avro at all",  # garbage
        b"",  # empty value
        None,  # no value (a tombstone)
        good[:12],  # truncated body
        struct.pack(">bI", 0, 2_000_000_000) + b"\x02",  # a schema id never issued
        fb.encode(_feedback("f-x", "d1", 0.5)),  # a real id, of another contract
        dec.encode(negative),  # decodes, fails analytics' rules
    ]
    messages = [Message(DECISIONS, 0, good)]
    messages += [Message(DECISIONS, 1 + i, v) for i, v in enumerate(poison_values)]
    messages.append(Message(DECISIONS, 8, dec.encode(_decision("d2"))))
    messages += [
        Message(FEEDBACK_TOPIC, 0, dec.encode(_decision("d3"))),  # a decision id on feedback
        Message(FEEDBACK_TOPIC, 1, fb.encode(_feedback("f-bad", "d1", 1.5))),  # score > 1
        Message(FEEDBACK_TOPIC, 2, fb.encode(_feedback("f1", "d1", 1.0))),
    ]
    poison = {(DECISIONS, 1 + i) for i in range(len(poison_values))}
    return messages, poison | {(FEEDBACK_TOPIC, 0), (FEEDBACK_TOPIC, 1)}


def _keys(producer: Producer) -> list[bytes]:
    return [key for key, _ in producer.sent]


def _first_run(resolver: LocalResolver) -> tuple[Producer, list[Message], set[tuple[str, int]]]:
    """A fresh group's run over ``_traffic``: its producer (dead letters written), the
    messages and the poison positions."""
    producer = Producer()
    messages, poison = _traffic(resolver)
    Run(resolver, producer).process(messages)
    assert len(producer.sent) == len(poison)
    return producer, messages, poison


def test_every_poison_kind_is_one_dead_letter_flushed_before_the_commit(
    resolver: LocalResolver, caplog
) -> None:
    producer = Producer()
    run = Run(resolver, producer)
    messages, poison = _traffic(resolver)
    caplog.set_level(logging.WARNING)
    run.process(messages)

    assert sorted(_keys(producer)) == sorted(f"{t}/0/{o}".encode() for t, o in poison)
    assert all(headers == {CONSUMER_HEADER: NAME.encode()} for _, headers in producer.sent)
    assert producer.events == ["flush", "commit"]
    assert run.group.commits == [{(DECISIONS, 0): 9, (FEEDBACK_TOPIC, 0): 3}]
    pipeline = run.pipeline()
    assert pipeline["dead_lettered"] == len(poison) == 9
    assert pipeline["poison_replayed"] == 0
    assert pipeline["decisions_applied"] == 2
    assert pipeline["feedback_joined"] == 1
    assert run.sample("routeiq_analytics_dead_lettered_total", kind="decision",
                      error_type="SerializationError") == 6  # fmt: skip
    assert run.sample("routeiq_analytics_dead_lettered_total", kind="decision",
                      error_type="InvalidRecordError") == 1  # fmt: skip
    # One short WARNING per poison record: the other contract's schema is named, not dumped.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == len(poison)
    assert all(len(w) < REASON_CHARS + 80 for w in warnings)
    assert any("does not resolve to" in w and "Feedback" in w for w in warnings)


def test_a_replay_below_the_committed_offset_writes_no_second_dead_letter(
    resolver: LocalResolver,
) -> None:
    producer, messages, poison = _first_run(resolver)
    written = list(producer.sent)

    # A restart without a recall: the group's committed offsets alone mark the replay.
    again = Run(resolver, producer, committed={(DECISIONS, 0): 9, (FEEDBACK_TOPIC, 0): 3})
    again.process(messages)
    assert producer.sent == written
    pipeline = again.pipeline()
    assert (pipeline["dead_lettered"], pipeline["poison_replayed"]) == (0, len(poison))
    assert pipeline["decisions_applied"] == 2  # the windows are rebuilt all the same
    assert again.group.commits == []  # a replay never moves the committed offset back


def test_a_crash_between_flush_and_commit_is_caught_by_the_recall(
    resolver: LocalResolver,
) -> None:
    producer, messages, poison = _first_run(resolver)
    written = list(producer.sent)

    # Nothing committed (the crash came first): only the dead letters read back keep the
    # re-read from writing them again; records after them still get theirs.
    reader = DeadLetterReader(producer)
    again = Run(resolver, producer, reader=reader)
    assert (again.recalled, reader.closed) == (len(poison), True)
    extra = Message(DECISIONS, 9, b"\x00")
    again.process([*messages, extra])
    assert producer.sent[: len(written)] == written
    assert _keys(producer)[len(written) :] == [b"dec/0/9"]
    pipeline = again.pipeline()
    assert (pipeline["dead_lettered"], pipeline["poison_replayed"]) == (1, len(poison))
    assert (
        again.sample("routeiq_analytics_records_total", kind="feedback", outcome="poison_replayed")
        == 2
    )


def test_dead_letters_kafka_cannot_take_are_retried_and_kafka_is_reported_once(
    resolver: LocalResolver, caplog
) -> None:
    producer = Producer()
    run = Run(resolver, producer)
    producer.fail = "broker down"
    failed_once = []

    # The flush fails twice, then the broker takes the dead letter again.
    real_flush = producer.flush

    def flaky(timeout: float) -> int:
        left = real_flush(timeout)
        failed_once.append(producer.fail)
        if len(failed_once) == 2:
            producer.fail = None
        return left

    producer.flush = flaky  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, "t.analytics")
    run.process([Message(DECISIONS, 0, b"garbage")])
    assert producer.events == ["flush-failed", "flush-failed", "flush", "commit"]
    assert _keys(producer) == [b"dec/0/0", b"dec/0/0", b"dec/0/0"]  # re-sent after each failure
    assert run.sink.has_written(DECISIONS, 0, 0)
    assert [r.getMessage()[:22] for r in caplog.records if r.name == "t.analytics"] == [
        "kafka unavailable: dea",
        "kafka available again ",
    ]


def test_a_stop_while_kafka_is_down_commits_nothing(resolver: LocalResolver) -> None:
    producer = Producer()
    run = Run(resolver, producer)
    producer.fail = "broker down"
    stop = threading.Event()
    stop.set()
    with pytest.raises(ConsumerStoppedError):
        run.loop.process([Message(DECISIONS, 0, b"garbage")], stop)  # type: ignore[list-item]
    assert "commit" not in producer.events
    assert not run.deps.ready


def test_kafka_errors_become_state_and_a_probe_sees_it_back(
    resolver: LocalResolver, caplog
) -> None:
    run = Run(resolver, Producer())
    kafka = run.deps["kafka"]
    on_error = kafka_error_handler(kafka)
    caplog.set_level(logging.INFO, "t.analytics")
    # One closed connection is librdkafka reconnecting, not Kafka lost.
    on_error(KafkaError(KafkaError._TRANSPORT, "Disconnected"))
    assert kafka.up
    on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    for _ in range(1000):  # librdkafka keeps reporting while it retries
        on_error(KafkaError(KafkaError._TRANSPORT, "Connect failed"))
    assert not kafka.up
    assert run.sample("routeiq_dependency_up", dependency="kafka") == 0
    assert run.loop.status()["dependencies"]["kafka"]["up"] is False

    # Nothing arrives while it is down: the loop asks the broker, at most every probe_every_s.
    run.loop.probe_every_s = 0
    run.group.down = True
    run.loop._watch_kafka([])
    assert not kafka.up
    run.group.down = False
    run.loop._watch_kafka([])
    assert kafka.up
    assert run.sample("routeiq_dependency_up", dependency="kafka") == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "t.analytics"]
    assert len(lines) == 2
    assert lines[0].startswith("kafka unavailable: _ALL_BROKERS_DOWN")
    assert lines[1].startswith("kafka available again")


class Bug:
    """A decoder that fails on a value in a way nobody wrapped (a bug, not a bad record)."""

    subject = "dec-value"

    def decode(self, value: bytes | None) -> dict[str, Any]:
        raise OverflowError("int too large to convert")


def test_an_unforeseen_decoder_failure_costs_the_record_not_the_loop(
    resolver: LocalResolver,
) -> None:
    producer = Producer()
    run = Run(resolver, producer, decisions=Bug())
    run.process([Message(DECISIONS, 0, b"\x00\x00\x00\x00\x01\xff")])
    assert _keys(producer) == [b"dec/0/0"]
    assert producer.events == ["flush", "commit"]
    assert (
        run.sample(
            "routeiq_analytics_dead_lettered_total",
            kind="decision",
            error_type="SerializationError",
        )
        == 1
    )
