"""The announcement reader's poison policy, offline: every record it cannot decode or validate
becomes one dead letter and the reader goes on; a registry that does not answer is waited
for, never dead-lettered; a dead letter Kafka does not acknowledge is sent again later while
the next good announcement is still applied."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError
from routeiq.contracts.catalog import DEAD_LETTER, MODEL_ANNOUNCEMENT, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.deadletters import DeadLetterSink
from routeiq.errors import RegistryError
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.sync.announcements import Announcement, AnnouncementReader
from support.records import router_decision

TOPIC = "announcements"


def announcement(version: str = "v1", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "announcement_id": "a-1",
        "model_name": "r",
        "version": version,
        "action": "PROMOTE",
        "router_type": "knn",
        "bundle": {
            "bucket": "models",
            "prefix": f"models/r/{version}/",
            "manifest_sha256": "a" * 64,
            "size_bytes": 1,
            "manifest_version_id": None,
        },
        "signature": {"algorithm": "ed25519", "key_id": "k", "value": "c2ln"},
        "metrics": {},
        "previous_version": None,
        "mlflow_run_id": None,
        "mlflow_model_version": None,
        "announced_by": "tests",
        "announced_at": 1,
        "reason": None,
    }
    record.update(changes)
    return record


class _Eof:
    def code(self) -> int:
        return KafkaError._PARTITION_EOF


class _Message:
    def __init__(self, offset: int, value: bytes | None, error: Any = None) -> None:
        self._offset, self._value, self._error = offset, value, error

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1000 + self._offset)

    def key(self) -> bytes:
        return b"r"

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> None:
        return None

    def error(self) -> Any:
        return self._error


class _Consumer:
    """The announcement log: its records, then end-of-partition, then nothing."""

    def __init__(self, values: list[bytes | None]) -> None:
        self._queue = [_Message(i, v) for i, v in enumerate(values)]
        self._queue.append(_Message(len(values), None, _Eof()))
        self.assigned: list[Any] = []
        # How many recalls had run when the reader first polled (set by the test's run).
        self.count_recalls: Callable[[], int] = lambda: 0
        self.recalls_at_first_poll: int | None = None

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def poll(self, timeout: float) -> _Message | None:
        if self.recalls_at_first_poll is None:
            self.recalls_at_first_poll = self.count_recalls()
        if self._queue:
            return self._queue.pop(0)
        time.sleep(min(timeout, 0.01))
        return None

    def list_topics(self, *_: Any, **__: Any) -> None:
        return None

    def close(self) -> None:
        pass


class _EmptyDeadLetterTopic:
    """A recall reader over a dead-letter topic with nothing in it."""

    closed = False

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={})})

    def offsets_for_times(self, partitions: list[Any], timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        self.closed = True


class _Producer:
    """The dead-letter producer: delivery reported at flush, failing ``fail_flushes`` times."""

    def __init__(self, fail_flushes: int = 0) -> None:
        self.sent: list[bytes] = []
        self._pending: list[Any] = []
        self.fail_flushes = fail_flushes

    def produce(self, topic: str, *, key: bytes, value: bytes, headers: Any, on_delivery: Any):
        self.sent.append(key)
        self._pending.append(on_delivery)

    def flush(self, _timeout: float) -> int:
        if self.fail_flushes:
            self.fail_flushes -= 1
            return len(self._pending)  # still queued: not acknowledged
        for callback in self._pending:
            callback(None, None)
        self._pending.clear()
        return 0


class _Registry(LocalResolver):
    """A resolver whose registry does not answer look-ups by id while ``down``."""

    down = False

    def schema_for(self, schema_id: int) -> str:
        if self.down:
            raise RegistryError("schema registry unreachable", error_code=50002, http_status=503)
        return super().schema_for(schema_id)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class _Run:
    def __init__(
        self, values: list[bytes | None], serde: AvroSerde, producer: _Producer, resolver: Any
    ):
        self.applied: list[Announcement] = []
        self.metrics = GatewayMetrics()
        self.recalls: list[_EmptyDeadLetterTopic] = []
        self.producer = producer
        self.consumer = _Consumer(values)
        self.consumer.count_recalls = lambda: len(self.recalls)

        def recall_reader() -> Any:
            self.recalls.append(_EmptyDeadLetterTopic())
            return self.recalls[-1]

        self.reader = AnnouncementReader(
            name="r",
            consumer=self.consumer,  # type: ignore[arg-type]
            topic=TOPIC,
            serde=serde,
            apply=self.applied.append,
            dead_letters=DeadLetterSink(
                producer=producer,  # type: ignore[arg-type]
                serde=AvroSerde.for_contract(DEAD_LETTER, subject="dl-value", resolver=resolver),
                topic="dead-letters",
                consumer="routeiq-gateway/announcements",
            ),
            recall_reader=recall_reader,
            dependencies=self.metrics.dependencies,
            on_poison=lambda _exc: self.metrics.dead_letters.inc(),
            retry_s=0.01,
        )


@pytest.fixture
def run() -> Iterator[Callable[..., _Run]]:
    started: list[_Run] = []

    def start(values: list[bytes | None], serde: AvroSerde, producer: _Producer, resolver: Any):
        started.append(_Run(values, serde, producer, resolver))
        started[-1].reader.start()
        return started[-1]

    yield start
    for r in started:
        r.reader.stop()


def _poison(serde: AvroSerde, other: AvroSerde) -> dict[str, bytes | None]:
    good = serde.encode(announcement())
    return {
        "garbage bytes": b"\xff\xfe not avro at all",
        "empty value": b"",
        "null value": None,
        "truncated body": good[:8],
        "unknown schema id": b"\x00\x00\x00\x03\xe7" + good[5:],
        "another contract's id": other.encode(router_decision().to_record()),
        "unsafe version": serde.encode(announcement("../../etc")),
        "malformed digest": serde.encode(
            announcement(bundle={**announcement()["bundle"], "manifest_sha256": "nope"})
        ),
    }


def test_every_poison_kind_is_dead_lettered_once_and_the_good_announcement_applied(run) -> None:
    resolver = LocalResolver()
    serde = AvroSerde.for_contract(MODEL_ANNOUNCEMENT, subject="a-value", resolver=resolver)
    other = AvroSerde.for_contract(ROUTER_DECISION, subject="other-value", resolver=resolver)
    poison = _poison(serde, other)
    values = [*poison.values(), serde.encode(announcement("v2"))]
    r = run(values, serde, _Producer(), resolver)

    _until(lambda: r.reader.caught_up.is_set(), "the end of the log")
    assert [a.version for a in r.applied] == ["v2"]
    assert r.producer.sent == [f"{TOPIC}/0/{i}".encode() for i in range(len(poison))]
    assert r.reader.dead_letters.has_written(TOPIC, 0, len(poison) - 1)
    assert r.metrics.registry.get_sample_value("routeiq_gateway_dead_letters_total") == len(poison)
    # The recall ran (and closed its reader) before the first poll; the reader still runs.
    assert [reader.closed for reader in r.recalls] == [True]
    assert r.consumer.recalls_at_first_poll == 1
    assert r.reader._thread is not None
    assert r.reader._thread.is_alive()
    assert r.metrics.dependencies.ready


def test_a_registry_that_does_not_answer_is_waited_for_not_dead_lettered(run) -> None:
    resolver = _Registry()
    good = AvroSerde.for_contract(MODEL_ANNOUNCEMENT, subject="a-value", resolver=resolver).encode(
        announcement("v3")
    )
    resolver.down = True
    # A fresh serde: the writer schema is not cached yet, so decoding asks the registry.
    serde = AvroSerde.for_contract(MODEL_ANNOUNCEMENT, subject="a-value", resolver=resolver)
    r = run([good], serde, _Producer(), resolver)
    registry = r.metrics.dependencies["registry"]

    _until(lambda: not registry.up, "the registry to be seen lost")
    assert r.applied == []
    assert not r.reader.caught_up.is_set()  # the record is held, not passed over
    resolver.down = False
    _until(lambda: bool(r.applied), "the announcement")
    assert [a.version for a in r.applied] == ["v3"]
    assert r.producer.sent == []
    assert registry.up


def test_an_unacknowledged_dead_letter_is_sent_again_and_never_holds_up_the_log(
    run, caplog
) -> None:
    caplog.set_level(logging.INFO, "routeiq_gateway.dependencies")
    resolver = LocalResolver()
    serde = AvroSerde.for_contract(MODEL_ANNOUNCEMENT, subject="a-value", resolver=resolver)
    producer = _Producer(fail_flushes=2)
    r = run([b"garbage", serde.encode(announcement("v4"))], serde, producer, resolver)

    _until(lambda: r.reader.caught_up.is_set(), "the end of the log")
    assert [a.version for a in r.applied] == ["v4"]
    _until(lambda: r.reader.dead_letters.has_written(TOPIC, 0, 0), "the dead letter")
    # Queued once: the retries waited for the same queued message, nothing was sent twice.
    assert producer.sent == [f"{TOPIC}/0/0".encode()]
    assert r.metrics.registry.get_sample_value("routeiq_gateway_dead_letters_total") == 1
    assert r.metrics.dependencies.ready
    # Two failed flushes, one warning; then one line at recovery.
    lines = [
        (rec.levelname, rec.getMessage().split(":")[0])
        for rec in caplog.records
        if rec.name == "routeiq_gateway.dependencies"
    ]
    assert lines == [
        ("WARNING", "kafka-dead-letters unavailable"),
        ("INFO", lines[-1][1]),
    ]
    assert lines[-1][1].startswith("kafka-dead-letters available again")
