"""Reading a compacted log the whole fleet follows (model announcements, the routing
configuration): every replica reads it from the beginning, acts on the latest wanted record
once caught up, then on each new one as it arrives.

A record the reader cannot decode or validate (bad bytes or framing, an unknown schema id,
another contract's id, a value the gateway cannot act on) is poison: it becomes one dead
letter and the reader goes on to the next record. The reader commits no offsets (it re-reads
the log from the beginning at every start), so what keeps a restarted replica from
dead-lettering the same record again is ``DeadLetterSink.recall``, run before the first poll.
A registry that does not answer is not poison: the record is decoded again once it answers.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from routeiq.contracts.serde import AvroSerde
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependencies
from routeiq.errors import ContractError, RegistryError, RouteIQError

# One logger for the sync package, as before the split: operators grep for "routeiq_gateway.sync".
log = logging.getLogger(__package__)

T = TypeVar("T")


# eq=False: one reader thread per object, compared by identity.
@dataclass(kw_only=True, eq=False)
class CompactedLogReader(abc.ABC, Generic[T]):
    """A background thread handing the log's wanted records to ``apply``.

    While replaying history only the latest wanted record matters (each is the whole desired
    state): it is applied once the end of the log is reached (``caught_up``), then every new
    one as it arrives. Poison records go to ``dead_letters`` (recalled first, through a
    consumer from ``recall_reader``) and ``on_poison`` hears about each; the reader's Kafka
    and the registry are reported to ``dependencies`` as ``kafka_dependency``,
    ``kafka-dead-letters`` and ``registry``. Subclasses say how a decoded record becomes a
    ``T`` (``parse``) and which ones this replica follows (``wanted``).
    """

    consumer: Consumer
    topic: str
    serde: AvroSerde
    apply: Callable[[T], object]
    dead_letters: DeadLetterSink
    # A fresh consumer for each ``recall`` attempt (recall closes the one it is given).
    recall_reader: Callable[[], Consumer]
    dependencies: Dependencies
    on_poison: Callable[[Exception], None]
    dead_letter_timeout_s: float = 30.0
    recall_timeout_s: float = 30.0
    # Between attempts while Kafka or the registry does not answer.
    retry_s: float = 5.0
    kafka_dependency: str = "kafka-announcements"
    thread_name: str = "model-sync"
    # Set once the log is read to its end (the owner may hand in the event it waits on).
    caught_up: threading.Event = field(default_factory=threading.Event)
    _latest_seen: T | None = field(init=False, default=None)
    # Poison records whose dead letter is not acknowledged yet (Kafka went away meanwhile):
    # sent again every ``retry_s`` while the reader goes on. Nothing is committed, so a stop
    # before they are acknowledged re-reads them at the next start.
    _undelivered: list[tuple[Message, Exception]] = field(init=False, default_factory=list)
    _retry_at: float = field(init=False, default=0.0)
    _stop: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._kafka = self.dependencies[self.kafka_dependency]
        self._registry = self.dependencies["registry"]
        # The dead-letter producer is a client of its own: reported apart, so the reader
        # seeing Kafka and the producer not seeing it never flap one state.
        self._dead_letter_kafka = self.dependencies["kafka-dead-letters"]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(RuntimeError):  # already closed
            self.consumer.close()

    def _run(self) -> None:
        if not self._recall():
            return
        # No group offsets: every replica reads the whole compacted log from the beginning.
        self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        while not self._stop.is_set():
            if self._undelivered and time.monotonic() >= self._retry_at:
                self._send_dead_letters([])
            try:
                msg = self.consumer.poll(0.5)
            except RuntimeError:
                return
            if msg is None:
                self._probe()
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._kafka.recovered()
                    self._on_caught_up()
                else:
                    self._kafka.failed(err)
                continue
            self._kafka.recovered()
            item = self._decode(msg)
            if item is None or not self.wanted(item):
                continue
            if self.caught_up.is_set():
                self.apply(item)
            else:
                self._latest_seen = item

    def _recall(self) -> bool:
        """What this replica's consumer name dead-lettered before, read back before the first
        record; retried until Kafka answers (False: stopped meanwhile)."""
        while not self._stop.is_set():
            try:
                self.dead_letters.recall(self.recall_reader(), timeout_s=self.recall_timeout_s)
            except RouteIQError as exc:
                # Model sync waits: reading on without it would dead-letter records again.
                self._dead_letter_kafka.failed(f"reading back dead letters: {exc}")
                self._stop.wait(self.retry_s)
                continue
            self._dead_letter_kafka.recovered()
            return True
        return False

    def _probe(self) -> None:
        """While the reader's Kafka is lost, ask for metadata now and then: an idle topic
        brings no message to say the broker is back."""
        if self._kafka.up or time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + self.retry_s
        try:
            self.consumer.list_topics(self.topic, timeout=2.0)
        except KafkaException as exc:
            self._kafka.failed(exc)
            return
        self._kafka.recovered()

    @abc.abstractmethod
    def parse(self, record: dict[str, Any]) -> T:
        """The decoded record as this reader's ``T``; ``ContractError`` if it cannot act on it."""

    @abc.abstractmethod
    def wanted(self, item: T) -> bool:
        """Whether this replica follows ``item`` (the log carries others' records too)."""

    def _decode(self, msg: Message) -> T | None:
        """The message's record; ``None`` for poison (dead-lettered) or on stop."""
        while not self._stop.is_set():
            try:
                record = self.serde.decode(msg.value())
            except RegistryError as exc:
                # The registry is failing, not the record: decode it again when it answers.
                self._registry.failed(exc)
                self._stop.wait(self.retry_s)
                continue
            except ContractError as exc:
                self._poison(msg, exc)
                return None
            self._registry.recovered()
            try:
                return self.parse(record)
            except ContractError as exc:
                self._poison(msg, exc)
                return None
        return None

    def _poison(self, msg: Message, exc: Exception) -> None:
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        if self.dead_letters.has_written(str(msg.topic()), msg.partition() or 0, msg.offset() or 0):
            # Recalled: dead-lettered by an earlier start of this replica.
            log.debug("%s was dead-lettered before", where)
            return
        log.warning("%s dead-lettered: %s", where, str(exc)[:300])
        self.on_poison(exc)
        self._send_dead_letters([(msg, exc)])

    def _send_dead_letters(self, new: list[tuple[Message, Exception]]) -> None:
        """Queue ``new`` and every earlier unacknowledged dead letter, and wait for them; on
        failure keep them for the next attempt (a source position already written or queued
        is not sent twice)."""
        self._undelivered.extend(new)
        try:
            for msg, exc in self._undelivered:
                self.dead_letters.send(msg, exc)
            self.dead_letters.flush(self.dead_letter_timeout_s)
        except RegistryError as exc:  # the dead letter's schema id
            self._registry.failed(exc)
        except RouteIQError as exc:
            self._dead_letter_kafka.failed(exc)
        else:
            self._undelivered.clear()
            self._dead_letter_kafka.recovered()
            return
        self._retry_at = time.monotonic() + self.retry_s

    def _on_caught_up(self) -> None:
        if self.caught_up.is_set():
            return
        if self._latest_seen is not None:
            self.apply(self._latest_seen)
        self.caught_up.set()
