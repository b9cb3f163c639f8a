"""Fakes of the request worker's collaborators: confluent-kafka's consumer, producer and
messages (the surface the worker and ``DeadLetterSink`` use), and the training pipeline.
Every fake writes what it does to one shared ``events`` list, so a test can check order
(a dead letter acknowledged before the offset is committed)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from routeiq.contracts.records import CONSUMER_HEADER
from routeiq_trainer.core.requests import TrainRequest
from routeiq_trainer.core.results import Outcome
from routeiq_trainer.core.versions import VersionInfo
from support.kafka import FakeMessage

TOPIC = "requests"
DEAD_LETTER_TOPIC = "dead-letters"


class Message(FakeMessage):
    """A record on the requests topic: ``Message(value, offset)``, keyed by the router name."""

    def __init__(self, value_bytes: bytes | None, offset_: int, **fields: Any) -> None:
        defaults: dict[str, Any] = {
            "topic_": TOPIC,
            "key_": b"router",
            "timestamp_": (1, 1_700_000_000_000),
        }
        super().__init__(**{**defaults, **fields, "value_": value_bytes, "offset_": offset_})


@dataclass
class Consumer:
    """Delivers ``messages`` in order (assigning their partitions on the first poll), then
    sets ``stop``; ``commit`` records the offset. While the last poll returned an error the
    brokers are down: a metadata request fails too."""

    messages: list[Message | None]
    stop: threading.Event
    events: list[str]
    down: bool = False
    commits: list[tuple[int, int]] = field(default_factory=list)
    closed: bool = False
    paused: bool = False
    _on_assign: Callable[..., None] | None = None

    def subscribe(self, topics: list[str], *, on_assign: Any, on_revoke: Any) -> None:
        assert topics == [TOPIC]
        self.events.append("subscribe")
        self._on_assign = on_assign

    def poll(self, _timeout: float) -> Message | None:
        if self.paused:
            self.events.append("poll (paused)")  # a paused partition delivers nothing
            return None
        self.events.append("poll")
        if self._on_assign is not None:
            partitions = sorted({m.partition_ for m in self.messages if m is not None} or {0})
            self._on_assign(self, [TopicPartition(TOPIC, p) for p in partitions])
            self._on_assign = None
        if not self.messages:
            self.stop.set()
            return None
        message = self.messages.pop(0)
        self.down = message is not None and message.error_ is not None
        return message

    def commit(self, *, message: Message, asynchronous: bool) -> None:
        assert asynchronous is False
        self.events.append(f"commit {message.offset()}")
        self.commits.append((message.partition(), message.offset()))

    def list_topics(self, topic: str, timeout: float) -> object:
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down"))
        return object()

    def close(self) -> None:
        self.closed = True

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.events.append(f"pause {[p.partition for p in partitions]}")
        self.paused = True

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.events.append(f"resume {[p.partition for p in partitions]}")
        self.paused = False


class Producer:
    """The producer surface ``DeadLetterSink`` uses; the first ``failing`` flushes report a
    delivery error, as librdkafka does for a broker that is down."""

    def __init__(self, events: list[str], *, failing: int = 0) -> None:
        self.events = events
        self.failing = failing
        self.sent: list[tuple[bytes, bytes, dict[str, bytes]]] = []
        self._pending: list[Any] = []

    def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: dict[str, bytes], on_delivery: Any
    ) -> None:
        assert topic == DEAD_LETTER_TOPIC
        self._pending.append((key, value, headers, on_delivery))

    def flush(self, _timeout: float) -> int:
        pending, self._pending = self._pending, []
        failed = self.failing > 0
        self.failing -= 1 if failed else 0
        for key, value, headers, on_delivery in pending:
            if failed:
                on_delivery(KafkaError(KafkaError._ALL_BROKERS_DOWN, "brokers down"), None)
            else:
                self.sent.append((key, value, headers))
                self.events.append(f"dead letter {key.decode()}")
                on_delivery(None, None)
        return 0


class RecallReader:
    """The dead-letter topic read back by ``DeadLetterSink.recall``: one partition holding
    ``letters`` (key, consumer name) at offsets 0..n-1; ``fails`` times unreachable first."""

    def __init__(self, letters: Iterable[tuple[bytes, str]], events: list[str]) -> None:
        self.letters = list(letters)
        self.events = events
        self._next = 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.events.append("recall")
        partition = type("Partition", (), {})()
        meta = type("Meta", (), {"partitions": {0: partition}, "error": None})()
        return type("Topics", (), {"topics": {topic: meta}})()

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float) -> list[Any]:
        return [TopicPartition(p.topic, p.partition, 0) for p in partitions]

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, len(self.letters)

    def assign(self, partitions: list[TopicPartition]) -> None:
        assert [p.partition for p in partitions] == [0]

    def poll(self, _timeout: float) -> Message | None:
        if self._next >= len(self.letters):
            return None
        key, consumer = self.letters[self._next]
        self._next += 1
        return Message(
            b"",
            self._next - 1,
            topic_=DEAD_LETTER_TOPIC,
            key_=key,
            headers_=[(CONSUMER_HEADER, consumer.encode())],
        )

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition, self._next) for p in partitions]

    def close(self) -> None:
        pass


@dataclass
class Pipeline:
    """Answers each request from ``script`` (an exception to raise, or a status), in order;
    ``trained`` when the script is exhausted."""

    script: list[BaseException | str] = field(default_factory=list)
    seen: list[TrainRequest] = field(default_factory=list)

    def process(self, request: TrainRequest) -> Outcome:
        self.seen.append(request)
        step = self.script.pop(0) if self.script else "trained"
        if isinstance(step, BaseException):
            raise step
        info = VersionInfo(
            name=request.model_name,
            number="1",
            run_id="run",
            tags={"routeiq.version": request.version},
            created_ms=0,
        )
        return Outcome(request.request_id, info, status=step)
