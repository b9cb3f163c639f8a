"""The labeler's poison policy without a broker: which failures are the record's (one dead
letter) and which are an outage (wait), and how the dead letter is written."""

from __future__ import annotations

import asyncio
import io
import logging
import struct
import uuid
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from confluent_kafka import KafkaError, KafkaException
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from routeiq.contracts.catalog import DEAD_LETTER, FEEDBACK, RETRAIN_REQUEST, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependencies
from routeiq.errors import RegistryError
from routeiq.labeling import DecisionFacts, FeedbackFacts
from routeiq_labeler.app import QuietWorker, Serdes, source_topic
from routeiq_labeler.metrics import LabelerMetrics
from routeiq_labeler.poison import RECORD_ERRORS, PoisonPolicy, record_facts, registry_outage
from support.records import decision_record

NOW = 1_763_028_000_123 + 10_000


def _serdes(resolver: Any = None) -> Serdes:
    resolver = resolver or LocalResolver()
    return Serdes(
        decisions=AvroSerde.for_topic(ROUTER_DECISION, "decisions", resolver=resolver),
        feedback=AvroSerde.for_topic(FEEDBACK, "feedback", resolver=resolver),
        deadletter=AvroSerde.for_topic(DEAD_LETTER, "deadletters", resolver=resolver),
        retrain=AvroSerde.for_topic(RETRAIN_REQUEST, "retrain", resolver=resolver),
    )


def _feedback(decision_id: str, score: float = 0.5) -> dict[str, Any]:
    return {
        "feedback_id": str(uuid.uuid4()),
        "decision_id": decision_id,
        "score": score,
        "source": "judge",
        "created_at": NOW,
        "candidate": None,
        "judge_model": None,
        "cost_usd": None,
        "latency_ms": None,
        "trace_id": None,
    }


def _facts(serdes: Serdes, *, decision: bool, key: bytes | None, value: bytes | None) -> Any:
    return record_facts(
        serdes, is_decision=decision, key=key, value=value, now_ms=NOW, max_future_skew_ms=60_000
    )


def _poison(serdes: Serdes, *, decision: bool) -> dict[str, tuple[bytes | None, bytes | None]]:
    """Every poison kind for one topic, as (key, value)."""
    record = decision_record()
    key = record["event_id"].encode()
    good = serdes.decisions.encode(record)
    other = serdes.feedback.encode(_feedback(record["event_id"]))
    if not decision:
        good, other = other, good
    bad_contract = (
        serdes.decisions.encode({**record, "selected_deployment": ""})
        if decision
        else serdes.feedback.encode(_feedback(record["event_id"], score=1.5))
    )
    return {
        "garbage": (key, b"not avro at all"),
        "empty": (key, b""),
        "none": (key, None),
        "truncated": (key, good[: len(good) // 2]),
        "unknown id": (key, b"\x00" + struct.pack(">I", 0x7FFFFFF0) + good[5:]),
        "another contract's id": (key, other),
        "fails the contract": (key, bad_contract),
    }


@pytest.mark.parametrize("decision", [True, False], ids=["decisions", "feedback"])
def test_every_poison_kind_is_the_records_fault_and_a_good_record_passes(decision: bool) -> None:
    serdes = _serdes()
    for kind, (key, value) in _poison(serdes, decision=decision).items():
        with pytest.raises(RECORD_ERRORS) as caught:
            _facts(serdes, decision=decision, key=key, value=value)
        assert not registry_outage(caught.value), kind
        assert len(str(caught.value)) < 500, kind  # a reason, not a schema dump
    record = decision_record()
    if decision:
        facts = _facts(
            serdes,
            decision=True,
            key=record["event_id"].encode(),
            value=serdes.decisions.encode(record),
        )
        assert isinstance(facts, DecisionFacts)
    else:
        facts = _facts(
            serdes,
            decision=False,
            key=b"d1",
            value=serdes.feedback.encode(_feedback("d1")),
        )
        assert isinstance(facts, FeedbackFacts)


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=64), decision=st.booleans(), schema_id=st.integers(0, 6))
def test_arbitrary_bytes_are_a_record_error_never_anything_else(
    value: bytes, decision: bool, schema_id: int
) -> None:
    """Bare bytes, and the same bytes behind each registered id (and unregistered ones)."""
    serdes = _serdes()
    _ = serdes.decisions.schema_id, serdes.feedback.schema_id  # ids 1 and 2 (LocalResolver)
    for candidate in (value, b"\x00" + struct.pack(">I", schema_id) + value):
        failure: BaseException | None = None
        try:
            _facts(serdes, decision=decision, key=b"k", value=candidate)
        except RECORD_ERRORS as exc:
            failure = exc
        assert failure is None or not registry_outage(failure)


class _DownRegistry(LocalResolver):
    def schema_for(self, schema_id: int) -> str:
        raise RegistryError("schema registry unreachable", error_code=50002, http_status=503)


def test_a_registry_outage_is_not_blamed_on_the_record() -> None:
    good = _serdes().decisions.encode(decision_record())
    with pytest.raises(RECORD_ERRORS) as caught:
        _facts(_serdes(_DownRegistry()), decision=True, key=b"k", value=good)
    assert registry_outage(caught.value)
    assert registry_outage(RegistryError("5xx", http_status=500))
    assert not registry_outage(RegistryError("no such subject", http_status=404))


class _Producer:
    """The part of confluent-kafka's Producer the sink and the probe use; ``down`` flushes
    time out (the messages stay queued) and metadata requests fail."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.queued: list[tuple[bytes, Any]] = []
        self.produced: list[bytes] = []

    def produce(self, topic: str, *, key: bytes, value: bytes, headers: Any, on_delivery: Any):
        self.queued.append((key, on_delivery))

    def flush(self, timeout: float) -> int:
        if self.down_for > 0:
            self.down_for -= 1
            return len(self.queued)
        for key, on_delivery in self.queued:
            self.produced.append(key)
            on_delivery(None, None)
        self.queued.clear()
        return 0

    def poll(self, timeout: float) -> int:
        return 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.down_for > 0:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return SimpleNamespace(topics={topic: None})


class _EmptyTopicReader:
    """A dead-letter topic with nothing in it, for ``recall``."""

    closed = False

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={})})

    def offsets_for_times(self, partitions: list, timeout: float) -> list:
        return []

    def close(self) -> None:
        self.closed = True


def _policy(producer: _Producer, log: logging.Logger) -> tuple[PoisonPolicy, Dependencies]:
    metrics = LabelerMetrics()
    deps = Dependencies(log=log, registry=metrics.registry)
    sink = DeadLetterSink(
        producer=producer,  # type: ignore[arg-type]
        serde=_serdes().deadletter,
        topic="deadletters",
        consumer="routeiq-labeler/test",
    )
    policy = PoisonPolicy(
        sink=sink,
        kafka=deps["kafka"],
        metrics=metrics,
        make_reader=_EmptyTopicReader,  # type: ignore[arg-type]
        clock_ms=lambda: NOW,
        retry_first_s=0.001,
    )
    return policy, deps


def _message(offset: int) -> SimpleNamespace:
    return SimpleNamespace(
        topic="decisions",
        partition=3,
        offset=offset,
        timestamp=1.0,
        key=b"k",
        value=b"x",
        headers=None,
    )


def _logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_poison_record_is_dead_lettered_once_keyed_by_its_position(caplog) -> None:
    producer = _Producer()
    policy, _ = _policy(producer, logging.getLogger("test.poison"))

    async def twice() -> tuple[bool, bool]:
        assert await policy.recall() == 0
        first = await policy.dead_letter(_message(7), "decision", ValueError("bad"))
        return first, await policy.dead_letter(_message(7), "decision", ValueError("bad"))

    with caplog.at_level(logging.INFO):
        assert asyncio.run(twice()) == (True, False)
    assert producer.produced == [b"decisions/3/7"]
    assert policy.metrics.dead_lettered.labels("decision", "ValueError")._value.get() == 1
    warnings = _logged(caplog, logging.WARNING)
    assert warnings == ["dead-lettered decisions[3]@7: ValueError: bad"]


def test_no_dead_letter_is_decided_before_the_recall() -> None:
    producer = _Producer()
    policy, _ = _policy(producer, logging.getLogger("test.poison.recall"))

    async def early() -> list[bytes]:
        pending = asyncio.create_task(policy.dead_letter(_message(9), "decision", KeyError("x")))
        await asyncio.sleep(0.05)
        seen = producer.produced + [key for key, _ in producer.queued]
        await policy.recall()
        await pending
        return seen

    assert asyncio.run(early()) == []
    assert producer.produced == [b"decisions/3/9"]


def test_a_recall_started_by_a_rebalance_holds_back_dead_letters_until_done() -> None:
    producer = _Producer()
    policy, _ = _policy(producer, logging.getLogger("test.poison.rebalance"))

    async def rebalance() -> bool:
        await policy.recall()
        policy.recall_later()
        written = await policy.dead_letter(_message(10), "feedback", KeyError("x"))
        return written and policy._recalling is not None and policy._recalling.done()

    assert asyncio.run(rebalance())
    assert producer.produced == [b"decisions/3/10"]


def test_while_kafka_is_away_the_dead_letter_waits_and_the_loss_is_logged_once(caplog) -> None:
    producer = _Producer(down_for=5)
    log = logging.getLogger("test.poison.outage")
    policy, deps = _policy(producer, log)

    async def once() -> bool:
        await policy.recall()
        return await policy.dead_letter(_message(8), "feedback", ValueError("bad"))

    with caplog.at_level(logging.INFO, logger=log.name):
        assert asyncio.run(once())
    assert producer.produced == [b"decisions/3/8"]  # one letter, though flushed six times
    assert deps["kafka"].up
    kafka_lines = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert kafka_lines[0].startswith("kafka unavailable")
    assert kafka_lines[1].startswith("kafka available again")
    assert len(kafka_lines) == 2


def test_the_probe_reports_kafka_in_the_gauge() -> None:
    producer = _Producer(down_for=1)
    policy, deps = _policy(producer, logging.getLogger("test.poison.probe"))
    registry: CollectorRegistry = policy.metrics.registry

    def gauge() -> float | None:
        return registry.get_sample_value("routeiq_dependency_up", {"dependency": "kafka"})

    policy.probe(timeout_s=0.1)
    assert gauge() == 0
    assert deps.states()["kafka"]["up"] is False
    producer.down_for = 0
    policy.probe(timeout_s=0.1)
    assert gauge() == 1
    assert deps.ready


def _app() -> faust.App:
    return faust.App(f"labeler-unit-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:1")


def test_faust_hands_the_agent_any_bytes_undecoded() -> None:
    """A Faust decode error would skip the record before the agent sees it (acked, no dead
    letter): the source's codecs must accept anything, including a tombstone."""
    topic = source_topic(_app(), "decisions", "feedback")
    for value in (b"\x00\x00\x00\x00\x01garbage", b"", None):
        message = faust.types.Message(
            topic="decisions",
            partition=0,
            offset=1,
            timestamp=1.0,
            timestamp_type=0,
            headers=[],
            key=b"\xff",
            value=value,
            checksum=None,
            tp=TP("decisions", 0),
        )
        event = asyncio.run(topic.decode(message))
        assert event.value == value
        assert event.key == b"\xff"


def test_faust_worker_logs_go_through_the_repeat_filter() -> None:
    stream = io.StringIO()
    logger = logging.Logger("root-under-test")
    logger.addHandler(logging.StreamHandler(stream))
    QuietWorker(_app(), quiet=True, redirect_stdouts=False).on_setup_root_logger(
        logger, logging.INFO
    )
    for _ in range(100):
        logger.error("Unable connect to node with id %s: %s", 1, "refused")
    assert stream.getvalue().count("Unable connect") == 1
