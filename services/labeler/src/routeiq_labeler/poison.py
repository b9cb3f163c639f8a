"""The labeler's poison policy: one dead letter per record it cannot decode or validate.

Faust hands the agent raw bytes (the source topic's codecs are ``raw``, which cannot fail), so
every decode and contract check happens in ``record_facts``, inside the agent, where a failure
is caught and judged by ``registry_outage``: a registry that does not answer says nothing
about the record (the agent waits for it), anything else is the record's fault.

A poison record becomes one ``DeadLetter`` through ``routeiq.deadletters.DeadLetterSink`` (a
confluent-kafka producer), acknowledged by Kafka before the agent takes the next event: Faust
acks an event only when the agent asks for the next one, and commits only acked offsets, so
the offset never moves past a record whose dead letter is not written. The sink ``recall``s
what this consumer wrote before the worker starts (and again, in the background, when a
partition moves here from another replica), so a replay after a crash or a reset writes no
second one. While Kafka is away the writer retries quietly:
the ``kafka`` dependency logs the loss once (``routeiq.dependencies``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.schema_registry.error import SchemaRegistryError
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependency
from routeiq.errors import ContractError, RegistryError, TransportError
from routeiq.labeling import (
    DecisionFacts,
    FeedbackFacts,
    decision_facts,
    feedback_facts,
)

from routeiq_labeler.app import Serdes, faust_dead_letter
from routeiq_labeler.metrics import LabelerMetrics

logger = logging.getLogger("routeiq_labeler")

# What decoding and validating a record raises when the record is bad. Our serde and the
# contract checks raise ContractError; the other three are what indexing a decoded record that
# lacks a field the checks read would raise (a schema that resolved but means something else),
# kept here so such a record is dead-lettered instead of crashing the agent.
RECORD_ERRORS: tuple[type[Exception], ...] = (ContractError, KeyError, TypeError, ValueError)

# Waits between retries while a dependency is away: doubling from the first to the last.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 15.0
# How long one flush of the dead-letter producer may block a worker thread.
FLUSH_TIMEOUT_S = 10.0
# How long the periodic Kafka check waits for metadata.
PROBE_TIMEOUT_S = 5.0
# A reason in a log line: enough to recognise it, never a schema dump.
LOG_REASON_CHARS = 200


def record_facts(
    serdes: Serdes,
    *,
    is_decision: bool,
    key: bytes | None,
    value: bytes | None,
    now_ms: int,
    max_future_skew_ms: int,
) -> DecisionFacts | FeedbackFacts:
    """Decode and validate one record; raises one of ``RECORD_ERRORS`` if it is bad (or the
    registry is away: ``registry_outage`` tells the two apart)."""
    if is_decision:
        return decision_facts(
            serdes.decisions.decode(value),
            key=key,
            now_ms=now_ms,
            max_future_skew_ms=max_future_skew_ms,
        )
    return feedback_facts(serdes.feedback.decode(value), key=key)


def registry_outage(exc: BaseException) -> bool:
    """Whether a decode failure is the registry's (no answer, or a 5xx), not the record's."""
    if isinstance(exc, RegistryError):
        return not 400 <= exc.http_status < 500
    cause = exc.__cause__
    if isinstance(cause, SchemaRegistryError):
        status = cause.http_status_code
        return status is None or status < 0 or status >= 500
    return False


class Backoff:
    """Doubling waits for a retry loop that must not spin (nor log) while a dependency is away."""

    def __init__(self, first_s: float = RETRY_FIRST_S, max_s: float = RETRY_MAX_S) -> None:
        self._next = first_s
        self._max = max_s

    async def wait(self) -> None:
        await asyncio.sleep(self._next)
        self._next = min(self._next * 2, self._max)


@dataclass(kw_only=True, eq=False)
class PoisonPolicy:
    """Writes each poison record's dead letter once and waits until Kafka acknowledged it."""

    sink: DeadLetterSink
    kafka: Dependency
    metrics: LabelerMetrics
    make_reader: Callable[[], Consumer]  # a fresh consumer for each ``recall`` (it closes it)
    clock_ms: Callable[[], int]
    flush_timeout_s: float = FLUSH_TIMEOUT_S
    retry_first_s: float = RETRY_FIRST_S
    # Set while what this consumer wrote is known: no dead letter is decided during a recall
    # (one that a rebalance started runs in the background while records flow).
    _recalled: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _recalling: asyncio.Task[int] | None = field(init=False, default=None)

    @property
    def consumer(self) -> str:
        return self.sink.consumer

    async def dead_letter(self, message: Any, kind: str, error: BaseException) -> bool:
        """Dead-letter a Faust message; False when this consumer already had (a replay)."""
        await self._recalled.wait()
        letter = faust_dead_letter(
            message, error, consumer=self.sink.consumer, now_ms=self.clock_ms()
        )
        if self.sink.has_written(*letter.source_position):
            logger.info(
                "%s[%d]@%d was dead-lettered before; not again",
                message.topic,
                message.partition,
                message.offset,
            )
            return False
        backoff = Backoff(self.retry_first_s)
        while not self.sink.has_written(*letter.source_position):
            try:
                # None while an earlier attempt is still queued: the flush waits for that one.
                self.sink.send_letter(letter)
                await asyncio.to_thread(self.sink.flush, self.flush_timeout_s)
            except TransportError as exc:
                self.kafka.failed(exc)
                await backoff.wait()
        self.kafka.recovered()
        self.metrics.dead_lettered.labels(kind, letter.error_type).inc()
        logger.warning(
            "dead-lettered %s[%d]@%d: %s: %s",
            message.topic,
            message.partition,
            message.offset,
            letter.error_type,
            letter.reason[:LOG_REASON_CHARS],
        )
        return True

    async def recall(self) -> int:
        """Learn which source positions this consumer already dead-lettered; retried until
        Kafka answers (nothing can be consumed without it anyway)."""
        self._recalled.clear()
        backoff = Backoff(self.retry_first_s)
        while True:
            try:
                reader = self.make_reader()
                found = await asyncio.to_thread(self.sink.recall, reader)
            except TransportError as exc:
                self.kafka.failed(exc)
                await backoff.wait()
                continue
            self.kafka.recovered()
            self._recalled.set()
            return found

    def recall_later(self) -> None:
        """Start a ``recall`` in the background (from a rebalance, which it must not hold up);
        dead letters wait until it is done."""
        if self._recalling is None or self._recalling.done():
            self._recalled.clear()
            self._recalling = asyncio.create_task(self.recall())

    def probe(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        """Ask Kafka for the dead-letter topic's metadata and record whether it answered.
        Blocking: run it in a thread. Also serves the producer's queued callbacks and logs."""
        producer = self.sink.producer
        producer.poll(0)
        try:
            producer.list_topics(self.sink.topic, timeout=timeout_s)
        except KafkaException as exc:
            self.kafka.failed(exc)
        else:
            self.kafka.recovered()
