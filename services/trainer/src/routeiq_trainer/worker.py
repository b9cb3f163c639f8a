"""The consumer loop: one retrain request at a time, offset committed after the work.

Scaling: requests are keyed by model name, so one model's requests stay on one partition and
are handled in order by one worker; more workers in the same consumer group take more
partitions (the topic has 3). A worker polls again only after finishing a request, so a
rebalance never hands a partition to another worker mid-request (``max.poll.interval.ms``
bounds a request's duration).

Error policy, per record: a request that cannot succeed (undecodable, bad parameters, no data)
is dead-lettered with the reason at once; an infrastructure failure (MLflow, S3, Kafka) is
retried with backoff and dead-lettered after the last attempt. Either way the offset is then
committed, so one bad request never wedges its partition. Only a failure to dead-letter
stops the worker (the record is not committed, so it is not lost).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from routeiq.contracts.serde import AvroSerde
from routeiq.deadletters import DeadLetterSink
from routeiq.errors import RouteIQError, SerializationError, TransportError

from routeiq_trainer.core.requests import TrainRequest
from routeiq_trainer.core.results import Outcome
from routeiq_trainer.errors import RequestError, is_transient
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.pipeline import TrainingPipeline

logger = logging.getLogger(__name__)


@dataclass
class WorkerState:
    """What ``/health/ready`` reports."""

    started: bool = False
    stopping: bool = False
    current: str | None = None
    last_poll: float = 0.0
    processed: int = 0
    failed: int = 0
    error: str | None = None
    partitions: list[int] = field(default_factory=list)


@dataclass(kw_only=True, eq=False)
class RequestWorker:
    """Consumes ``RetrainRequest`` records and hands each to the pipeline."""

    consumer: Consumer
    topic: str
    serde: AvroSerde
    pipeline: TrainingPipeline
    dead_letters: DeadLetterSink
    metrics: TrainerMetrics
    retry_attempts: int = 3
    retry_backoff_s: float = 2.0
    poll_timeout_s: float = 1.0
    dead_letter_timeout_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    state: WorkerState = field(default_factory=WorkerState, init=False)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; closes the consumer on the way out."""
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.state.started = True
        logger.info("consuming %s", self.topic)
        try:
            while not stop.is_set():
                message = self.consumer.poll(self.poll_timeout_s)
                self.state.last_poll = time.monotonic()
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise TransportError(f"fatal consumer error: {error}")
                    if error.code() != KafkaError._PARTITION_EOF:
                        logger.warning("consumer error: %s", error)
                    continue
                self.handle(message)
                self._commit(message)
        finally:
            self.state.stopping = True
            self.consumer.close()
            logger.info("consumer closed")

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.state.partitions = sorted({*self.state.partitions, *(p.partition for p in partitions)})
        logger.info("assigned %s partitions %s", self.topic, self.state.partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {p.partition for p in partitions}
        self.state.partitions = [p for p in self.state.partitions if p not in gone]

    def _commit(self, message: Message) -> None:
        try:
            self.consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            # Lost the partition in a rebalance: the next owner redelivers, and the request
            # id makes that a no-op.
            logger.warning(
                "commit of %s[%d]@%d failed: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                exc,
            )

    def handle(self, message: Message) -> Outcome | None:
        """Process one record under the error policy; returns the outcome if it succeeded."""
        self.metrics.busy.set(1)
        try:
            try:
                request = TrainRequest.from_record(self.serde.decode(message.value()))
            except (SerializationError, RequestError, KeyError, TypeError, ValueError) as exc:
                self._fail(message, exc, "cannot read the request")
                return None
            self.state.current = request.request_id
            for attempt in range(1, self.retry_attempts + 1):
                try:
                    outcome = self.pipeline.process(request)
                except Exception as exc:
                    if is_transient(exc) and attempt < self.retry_attempts:
                        self.metrics.failures.labels(type(exc).__name__).inc()
                        delay = self.retry_backoff_s * 2 ** (attempt - 1)
                        logger.warning(
                            "request %s attempt %d/%d failed (%s: %s); retrying in %.1fs",
                            request.request_id,
                            attempt,
                            self.retry_attempts,
                            type(exc).__name__,
                            exc,
                            delay,
                        )
                        self.sleep(delay)
                        continue
                    what = "gave up after retries" if is_transient(exc) else "cannot be done"
                    if not isinstance(exc, RouteIQError):
                        logger.exception("request %s: unexpected error", request.request_id)
                    self._fail(message, exc, f"request {request.request_id} {what}")
                    return None
                self.metrics.requests.labels(outcome.status).inc()
                self.state.processed += 1
                logger.info(
                    "request %s → %s %s (%s%s)",
                    request.request_id,
                    outcome.info.name,
                    outcome.version,
                    outcome.status,
                    ", announced" if outcome.announced else "",
                )
                return outcome
            return None
        finally:
            self.state.current = None
            self.metrics.busy.set(0)

    def _fail(self, message: Message, exc: BaseException, context: str) -> None:
        reason = f"{context}: {type(exc).__name__}: {exc}"
        logger.error(
            "%s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), reason
        )
        self.metrics.failures.labels(type(exc).__name__).inc()
        self.metrics.requests.labels("failed").inc()
        self.state.failed += 1
        # Acknowledged before the offset is committed; a TransportError here stops the worker
        # with the record uncommitted, so it is read again rather than lost.
        self.dead_letters.send(message, error_type=type(exc).__name__, reason=reason)
        self.dead_letters.flush(self.dead_letter_timeout_s)
        self.metrics.dead_letters.inc()
