"""The consumer loop: one retrain request at a time, offset committed after the work.

Scaling: requests are keyed by model name, so one model's requests stay on one partition and
are handled in order by one worker; more workers in the same consumer group take more
partitions (the topic has 3). A worker polls again only after finishing a request, so a
rebalance never hands a partition to another worker mid-request (``max.poll.interval.ms``
bounds a request's duration).

Error policy, per record:

* Poison (the one policy every RouteIQ consumer follows): a record that cannot be decoded
  (bytes, framing, unknown schema id, another contract's schema id) or whose request fails
  validation becomes exactly one dead letter, keyed by its source position and acknowledged
  before the offset is committed. The sink ``recall``s this consumer's earlier dead letters at
  start and after every rebalance that brings partitions here, so a record re-read after a
  crash between the flush and the commit is not dead-lettered twice.
* A request that decodes but cannot be trained as asked (bad parameters, no data, a missing
  shard) is dead-lettered with the reason at once. An infrastructure failure (MLflow, S3,
  Kafka) whose dependency's probe then fails is an outage: the request waits for it (its
  partitions paused, the consumer still polling) and is tried again, never dead-lettered
  for it. One that fails while the dependency answers is retried with backoff and
  dead-lettered after the last attempt. Either way the offset is then committed, so one bad
  request never wedges its partition.
* A lost dependency the record itself needs (the schema registry to decode it, Kafka to
  dead-letter it) is waited for, the record uncommitted: it is never dead-lettered for an
  outage and the worker never stops over a record. Losses are logged once through
  ``routeiq.dependencies`` (a reminder per minute, one line at recovery), never per retry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from routeiq.contracts.serde import AvroSerde
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependencies
from routeiq.errors import ContractError, RegistryError, RouteIQError, TransportError

from routeiq_trainer.core.requests import TrainRequest
from routeiq_trainer.core.results import Outcome
from routeiq_trainer.core.state import WorkerState
from routeiq_trainer.errors import TrainerError, dependency_of, is_transient
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.pipeline import TrainingPipeline

logger = logging.getLogger(__name__)

# What a record's bytes or its request can raise on the way to a ``TrainRequest``: the
# serde's and the request's own errors, and what ``from_record`` or fastavro raise on values
# outside their range (a timestamp past year 9999 is an OverflowError from fastavro).
POISON = (ContractError, TrainerError, KeyError, TypeError, ValueError, ArithmeticError)
# Commit failures that mean the partition moved in a rebalance, not that Kafka is lost.
_REBALANCED = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError._NO_OFFSET,
}
# The longest wait between two tries of a request that failed on a dependency.
_BACKOFF_MAX_S = 30.0
# Reasons in log lines are cut: the dead letter carries the full one.
_LOG_REASON_CHARS = 300


class Interrupted(Exception):
    """The worker was asked to stop while waiting for a lost dependency: the record in hand
    stays uncommitted and is read again by the next worker."""


@dataclass(kw_only=True, eq=False)
class RequestWorker:
    """Consumes ``RetrainRequest`` records and hands each to the pipeline."""

    consumer: Consumer
    topic: str
    serde: AvroSerde
    pipeline: TrainingPipeline
    dead_letters: DeadLetterSink
    # Builds the consumer that reads the dead-letter topic back (``DeadLetterSink.recall``).
    recall_reader: Callable[[], Consumer]
    metrics: TrainerMetrics
    dependencies: Dependencies
    # Cheap checks (raising ``RouteIQError``) that tell a lost dependency is back while the
    # worker has no record needing it; Kafka's is the consumer's own metadata request.
    probes: Mapping[str, Callable[[], object]] = field(default_factory=dict)
    probe_every_s: float = 5.0
    retry_attempts: int = 8
    retry_backoff_s: float = 2.0
    # Between tries while the record in hand waits for a lost dependency.
    hold_backoff_s: float = 5.0
    poll_timeout_s: float = 1.0
    dead_letter_timeout_s: float = 30.0
    # ``None``: wait on the stop event, so a shutdown never sits out a backoff.
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] = time.monotonic
    state: WorkerState = field(default_factory=WorkerState, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _recall_due: bool = field(default=True, init=False, repr=False)
    _probed_at: float = field(default=float("-inf"), init=False, repr=False)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; closes the consumer on the way out."""
        self._stop = stop
        try:
            # Before the first poll: what this consumer dead-lettered before a restart.
            self._recall()
            self.consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            self.state.started = True
            logger.info("consuming %s", self.topic)
            while not stop.is_set():
                self._step()
        except Interrupted:
            logger.info("stopped while waiting for a lost dependency; the record stays uncommitted")
        finally:
            self.state.stopping = True
            self.consumer.close()
            logger.info("consumer closed")

    def _step(self) -> None:
        message = self.consumer.poll(self.poll_timeout_s)
        self.state.last_poll = self.clock()
        self._probe_lost()
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.fatal():
                raise TransportError(f"fatal consumer error: {error}")
            if error.code() != KafkaError._PARTITION_EOF:
                self.dependencies["kafka"].failed(error)
            return
        self.dependencies["kafka"].recovered()
        if self._recall_due:
            # Partitions arrived from another worker of the group since the last recall.
            self._recall()
        self.handle(message)
        self._commit(message)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        added = {p.partition for p in partitions} - set(self.state.partitions)
        self.state.partitions = sorted({*self.state.partitions, *added})
        if added:
            # Read back before the next record (not here: a callback cannot wait out an
            # outage), so a record another worker dead-lettered and crashed before
            # committing is not dead-lettered again.
            self._recall_due = True
        logger.info("assigned %s partitions %s", self.topic, self.state.partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {p.partition for p in partitions}
        self.state.partitions = [p for p in self.state.partitions if p not in gone]

    def _recall(self) -> None:
        while True:
            try:
                self.dead_letters.recall(self.recall_reader())
            except (TransportError, KafkaException) as exc:
                self.dependencies["kafka"].failed(exc)
                self._hold()
                continue
            self.dependencies["kafka"].recovered()
            self._recall_due = False
            return

    def _probe_lost(self) -> None:
        """Ask each lost dependency whether it is back, at most every ``probe_every_s``."""
        now = self.clock()
        if now - self._probed_at < self.probe_every_s:
            return
        self._probed_at = now
        for dependency in [d for d in self.dependencies if not d.up]:
            self._ask(dependency.name)

    def _ask(self, name: str) -> bool | None:
        """Run ``name``'s probe, its state updated by the answer: whether it answers, or
        ``None`` when it has no probe."""
        probe = self._probe_kafka if name == "kafka" else self.probes.get(name)
        if probe is None:
            return None
        try:
            probe()
        except RouteIQError as exc:
            self.dependencies[name].failed(exc)
            return False
        self.dependencies[name].recovered()
        return True

    def _await(self, name: str) -> bool:
        """After a failure blamed on ``name``: if its probe says it is down, hold the record
        until it answers again and return True; False when it answers (the failure is then
        the request's, and counts as an attempt) or has no probe.

        The partitions are paused meanwhile and the consumer keeps polling, so an outage
        longer than ``max.poll.interval.ms`` does not cost the worker its group membership
        (a paused partition delivers nothing; a record fetched before the pause is sought
        back to)."""
        if self._ask(name) is not False:
            return False
        self.consumer.pause(self.consumer.assignment())
        early: list[Message] = []
        try:
            while True:
                self._pause(self.hold_backoff_s)
                fetched = self.consumer.poll(0)
                if fetched is not None and fetched.error() is None:
                    early.append(fetched)
                if self._ask(name):
                    return True
        finally:
            self.consumer.resume(self.consumer.assignment())
            for fetched in early:
                self.consumer.seek(
                    TopicPartition(fetched.topic(), fetched.partition(), fetched.offset())
                )

    def _probe_kafka(self) -> None:
        try:
            self.consumer.list_topics(self.topic, timeout=min(self.probe_every_s, 5.0))
        except KafkaException as exc:
            raise TransportError(f"cannot read metadata of {self.topic}: {exc}") from exc

    def _commit(self, message: Message) -> None:
        try:
            self.consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in _REBALANCED:
                # Lost the partition in a rebalance: the next owner redelivers, and the
                # request id (or the recalled dead letter) makes that a no-op.
                logger.warning(
                    "commit of %s[%d]@%d failed: %s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    exc,
                )
            else:
                self.dependencies["kafka"].failed(exc)
            return
        self.dependencies["kafka"].recovered()

    def handle(self, message: Message) -> Outcome | None:
        """Process one record under the error policy; returns the outcome if it succeeded.

        Raises ``Interrupted`` when stopped while waiting for a lost dependency.
        """
        self.metrics.busy.set(1)
        try:
            request = self._read(message)
            if request is None:
                return None
            self.state.current = request.request_id
            return self._train(message, request)
        finally:
            self.state.current = None
            self.metrics.busy.set(0)

    def _read(self, message: Message) -> TrainRequest | None:
        """The record's request; ``None`` once a poison record is dead-lettered."""
        waited = False
        while True:
            try:
                request = TrainRequest.from_record(self.serde.decode(message.value()))
            except RegistryError as exc:
                # The registry is failing, not the record: wait rather than dead-letter a
                # request that may be good.
                self.dependencies["registry"].failed(exc)
                waited = True
                self._hold()
                continue
            except POISON as exc:
                self._poison(message, exc)
                return None
            except Exception as exc:
                # Decoding is pure: whatever else it raises is still this record's fault, and
                # a record must never stop the worker (a crash loop on one record is how the
                # labeler and analytics lost theirs). The traceback is for the bug report.
                logger.exception("unexpected error decoding %s", _where(message))
                self._poison(message, exc)
                return None
            if waited:
                self.dependencies["registry"].recovered()
            return request

    def _poison(self, message: Message, exc: Exception) -> None:
        self.metrics.poison.labels(type(exc).__name__).inc()
        self._fail(message, exc, "cannot read the request", level=logging.WARNING)

    def _train(self, message: Message, request: TrainRequest) -> Outcome | None:
        attempt = 0
        while attempt < self.retry_attempts:
            attempt += 1
            try:
                outcome = self.pipeline.process(request)
            except Exception as exc:
                lost = dependency_of(exc)
                if lost is not None:
                    self.dependencies[lost].failed(exc)
                    if self._await(lost):
                        # An outage, not this request's fault: that try does not count.
                        attempt -= 1
                        continue
                if is_transient(exc) and attempt < self.retry_attempts:
                    self.metrics.failures.labels(type(exc).__name__).inc()
                    delay = min(self.retry_backoff_s * 2 ** (attempt - 1), _BACKOFF_MAX_S)
                    # INFO: the failure itself is the dependency's to log (once per loss).
                    logger.info(
                        "request %s attempt %d/%d failed (%s); retrying in %.1fs",
                        request.request_id,
                        attempt,
                        self.retry_attempts,
                        type(exc).__name__,
                        delay,
                    )
                    self._pause(delay)
                    continue
                what = "gave up after retries" if is_transient(exc) else "cannot be done"
                if not isinstance(exc, RouteIQError):
                    logger.exception("request %s: unexpected error", request.request_id)
                self._fail(message, exc, f"request {request.request_id} {what}")
                return None
            # Every request starts by looking its id up in MLflow: it answered.
            self.dependencies["mlflow"].recovered()
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

    def _fail(
        self, message: Message, exc: BaseException, context: str, *, level: int = logging.ERROR
    ) -> None:
        reason = f"{context}: {type(exc).__name__}: {exc}"
        self.metrics.failures.labels(type(exc).__name__).inc()
        self.metrics.requests.labels("failed").inc()
        self.state.failed += 1
        if self._dead_letter(message, type(exc).__name__, reason):
            self.metrics.dead_letters.inc()
            logger.log(level, "%s dead-lettered: %s", _where(message), _short(reason))
        else:
            logger.info("%s was dead-lettered before a restart; not again", _where(message))

    def _dead_letter(self, message: Message, error_type: str, reason: str) -> bool:
        """Send and acknowledge the dead letter, waiting out a Kafka outage; False when this
        consumer had dead-lettered that source position already."""
        letter = None
        while True:
            try:
                # ``send`` is None for a position queued by a failed try: the flush below
                # waits for that one.
                sent = self.dead_letters.send(message, error_type=error_type, reason=reason)
                letter = sent or letter
                self.dead_letters.flush(self.dead_letter_timeout_s)
            except TransportError as exc:
                self.dependencies["kafka"].failed(exc)
                self._hold()
                continue
            self.dependencies["kafka"].recovered()
            return letter is not None

    def _hold(self) -> None:
        """Wait before the next try at the record in hand (``Interrupted`` when stopping)."""
        self._pause(self.hold_backoff_s)

    def _pause(self, seconds: float) -> None:
        if self.sleep is None:
            self._stop.wait(seconds)
        else:
            self.sleep(seconds)
        if self._stop.is_set():
            raise Interrupted


def _short(text: str) -> str:
    return text if len(text) <= _LOG_REASON_CHARS else text[:_LOG_REASON_CHARS] + "…"


def _where(message: Message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"
