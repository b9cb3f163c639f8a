"""Non-blocking, loss-free event publishing: Kafka when it is up, the disk spool when it is not.

The request path only calls ``publish`` (an enqueue into librdkafka or an append to the
spool, microseconds either way). A background thread serves delivery callbacks and moves
between three states:

* ``up``       events go to the idempotent producer. librdkafka retries in-flight batches
               itself (``message.timeout.ms=0``: until the broker answers), and the idempotent
               producer makes those retries exactly-once.
* ``down``     entered when librdkafka reports all brokers down: messages still queued (never
               sent) are purged from librdkafka and spooled in order, and new events are
               spooled. The thread probes the broker every ``probe_interval_s``.
* ``draining`` the broker answered: the spool is replayed in order, committing the spool head
               after each acknowledged chunk; new events keep going to the spool behind it
               until it is empty, so the replay preserves order. Then ``up`` again.

A full spool drops new events (counted): the data plane never blocks on telemetry. Losing
Kafka or the spool's disk is logged once and reminded about rarely (the ``kafka-events`` and
``spool`` dependencies of ``GatewayMetrics.dependencies``), never once per event or probe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import InitVar, dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.spool import Spool, SpoolFullError

log = logging.getLogger(__name__)

UP, DOWN, DRAINING = "up", "down", "draining"
_STATE_CODE = {UP: 0, DRAINING: 1, DOWN: 2}


class Publisher(Protocol):
    """Where the request path hands encoded events (``EventPublisher``; tests collect them)."""

    @property
    def state(self) -> str: ...

    @property
    def spool_depth(self) -> int: ...

    last_error: str | None

    def publish(self, topic: str, key: bytes, value: bytes) -> None: ...


ProducerFactory = Callable[[Callable[[KafkaError], None]], Producer]


# eq=False: one publisher per producer and spool, compared by identity.
@dataclass(kw_only=True, eq=False)
class EventPublisher:
    # Called once with the error callback the producer must report to.
    producer_factory: InitVar[ProducerFactory]
    spool: Spool
    metrics: GatewayMetrics
    probe_interval_s: float = 1.0
    drain_chunk: int = 500

    def __post_init__(self, producer_factory: ProducerFactory) -> None:
        self._producer = producer_factory(self._on_error)
        self._kafka = self.metrics.dependencies["kafka-events"]
        self._disk = self.metrics.dependencies["spool"]
        # Re-entrant: purge() delivers callbacks (which spool) while the transition holds it.
        self._lock = threading.RLock()
        self._down_requested = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Start by replaying whatever an earlier process left in the spool.
        self._state = DRAINING if self.spool.pending else UP
        self.last_error: str | None = None
        self._set_state_metric()

    # ------------------------------------------------------------ public

    @property
    def state(self) -> str:
        return self._state

    @property
    def spool_depth(self) -> int:
        return self.spool.pending

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self._thread.start()

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Hand an encoded event over; never blocks on the network and never raises."""
        with self._lock:
            if self._state == UP:
                try:
                    self._producer.produce(
                        topic, value=value, key=key, on_delivery=self._on_delivery
                    )
                    return
                except BufferError:
                    pass  # librdkafka's queue is full: the broker is slow or gone
                except KafkaException as exc:
                    self.last_error = str(exc)
            self._to_spool(topic, key, value)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what can be flushed; spool the rest so the next start replays it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        with self._lock:
            if self._state == UP:
                self._producer.flush(timeout_s)
            # Never-sent messages are certainly not in Kafka: spool them. In-flight ones may
            # or may not be; spooling them risks a duplicate, dropping them a loss.
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            while self._producer.poll(0):
                pass
            self.spool.close()

    # ------------------------------------------------------------ callbacks

    def _to_spool(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            self.spool.append(topic, key, value)
            self.metrics.events.labels("spooled").inc()
            self._disk.recovered()
        except SpoolFullError as exc:
            self.metrics.events.labels("dropped").inc()
            self.last_error = str(exc)
        except OSError as exc:
            self.metrics.events.labels("dropped").inc()
            self.last_error = f"spool write failed: {exc}"
            self._disk.failed(f"spool write failed, events dropped: {exc}")
        self.metrics.spool_depth.set(self.spool.pending)

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = str(err)
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            self._down_requested.set()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.metrics.events.labels("produced").inc()
            return
        if err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self._to_spool(str(msg.topic()), msg.key() or b"", msg.value() or b"")
            return
        if err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT:
            self._to_spool(str(msg.topic()), msg.key() or b"", msg.value() or b"")
            self._down_requested.set()
            return
        # Permanent (e.g. message too large, topic unknown): retrying cannot help.
        self.metrics.events.labels("dropped").inc()
        self.last_error = f"delivery failed permanently: {err}"
        log.error("event dropped: %s", err)

    # ------------------------------------------------------------ background thread

    def _set_state_metric(self) -> None:
        self.metrics.producer_state.set(_STATE_CODE[self._state])

    def _run(self) -> None:
        next_probe = 0.0
        while not self._stop.is_set():
            self._producer.poll(0.05)
            if self._down_requested.is_set() and self._state == UP:
                self._go_down()
            if self._state in (DOWN, DRAINING) and time.monotonic() >= next_probe:
                if self._broker_reachable():
                    self._drain()
                next_probe = time.monotonic() + self.probe_interval_s
            self.metrics.spool_depth.set(self.spool.pending)
            self.spool.sync_due()

    def _go_down(self) -> None:
        with self._lock:
            self._down_requested.clear()
            if self._broker_reachable(timeout_s=0.5):
                return  # a transient connection error: the broker is still there
            self._kafka.failed(f"{self.last_error}; spooling events to {self.spool.directory}")
            self._state = DOWN
            self._producer.purge(in_queue=True, in_flight=False, blocking=False)
            while self._producer.poll(0):
                pass
            self._set_state_metric()

    def _broker_reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            metadata = self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def _drain(self) -> None:
        if self._state == DOWN:
            self._kafka.recovered()
            log.info("replaying %d spooled events", self.spool.pending)
            self._state = DRAINING
            self._set_state_metric()
        while not self._stop.is_set():
            records = self.spool.read(self.drain_chunk)
            if not records:
                with self._lock:
                    if not self.spool.read(1):
                        self._state = UP
                        self._down_requested.clear()
                        self._set_state_metric()
                        log.info("spool drained; publishing directly to Kafka again")
                        return
                continue
            failed: list[KafkaError] = []

            def on_delivery(
                err: KafkaError | None, _msg: Any, failed: list[KafkaError] = failed
            ) -> None:
                if err is not None:
                    failed.append(err)

            for rec in records:
                self._produce_blocking(rec.topic, rec.key, rec.value, on_delivery)
            remaining = self._producer.flush(30.0)
            if failed or remaining:
                self.last_error = f"replay failed: {failed[:1] or 'flush timed out'}"
                self._kafka.failed(self.last_error)
                self._state = DOWN
                self._set_state_metric()
                return
            self.spool.commit(records[-1], len(records))
            self.metrics.events.labels("replayed").inc(len(records))

    def _produce_blocking(
        self, topic: str, key: bytes, value: bytes, cb: Callable[[KafkaError | None, Any], None]
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=cb)
                return
            except BufferError:
                self._producer.poll(0.1)
