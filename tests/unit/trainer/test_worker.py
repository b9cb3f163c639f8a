"""The request worker's record policy with fakes: every poison kind is one dead letter,
acknowledged before its offset is committed; a restart writes none again; lost dependencies
are waited for and logged once; a request that decodes but fails training keeps its policy."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError
from routeiq.contracts.catalog import DEAD_LETTER, MODEL_ANNOUNCEMENT, RETRAIN_REQUEST
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependencies
from routeiq.errors import RegistryError, StorageError, TransportError
from routeiq_trainer.announce import announcement_record
from routeiq_trainer.bundles import BundleLocation
from routeiq_trainer.core.requests import TrainRequest
from routeiq_trainer.errors import RequestError, TrackingError
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.worker import RequestWorker
from unit.trainer import fakes
from unit.trainer.fakes import DEAD_LETTER_TOPIC, TOPIC, Message

CONSUMER = "routeiq-trainer/group"
DEPS_LOG = "routeiq_trainer.dependencies"


class Clock:
    """Advances ``step`` seconds per reading, and by whatever the worker sleeps."""

    def __init__(self, step: float = 0.0) -> None:
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class FlakyResolver:
    """A registry that answers 503 to the first ``fails`` schema look-ups."""

    def __init__(self, inner: LocalResolver, fails: int) -> None:
        self.inner, self.fails = inner, fails

    def id_for(self, subject: str, schema_text: str) -> int:
        return self.inner.id_for(subject, schema_text)

    def schema_for(self, schema_id: int) -> str:
        if self.fails:
            self.fails -= 1
            raise RegistryError("schema registry unreachable", error_code=50002, http_status=503)
        return self.inner.schema_for(schema_id)


RESOLVER = LocalResolver()
REQUESTS = AvroSerde.for_contract(RETRAIN_REQUEST, subject=f"{TOPIC}-value", resolver=RESOLVER)
LETTERS = AvroSerde.for_contract(DEAD_LETTER, subject="dl-value", resolver=RESOLVER)


def request(**changes: Any) -> TrainRequest:
    values: dict[str, Any] = {
        "request_id": "req-1",
        "model_name": "router",
        "requested_by": "test",
        "requested_at_ms": 1_700_000_000_000,
    }
    values.update(changes)
    return TrainRequest(**values)


def encoded(**record_changes: Any) -> bytes:
    record = request().to_record()
    record.update(record_changes)
    return REQUESTS.encode(record)


def another_contract() -> bytes:
    """A ModelAnnouncement under its own real schema id: what a misconfigured producer writes."""
    serde = AvroSerde.for_contract(MODEL_ANNOUNCEMENT, subject="ann-value", resolver=RESOLVER)
    return serde.encode(
        announcement_record(
            model_name="router",
            version="v1",
            action="PROMOTE",
            router_type="knn",
            bundle=BundleLocation("b", "p/", "ab" * 32, 1, None),
            signature={"algorithm": "ed25519", "key_id": "k", "value": "c2ln"},
            metrics={},
            previous_version=None,
            mlflow_run_id="run",
            mlflow_model_version="1",
            reason="test",
            announced_by="test",
        )
    )


GOOD = encoded()
# Each poison kind of the policy, and the error the dead letter names.
POISON: list[tuple[str, bytes | None, str]] = [
    ("garbage bytes", b"not avro at all", "SerializationError"),
    ("empty value", b"", "SerializationError"),
    ("no value", None, "SerializationError"),
    ("truncated body", GOOD[:8], "SerializationError"),
    ("unknown schema id", b"\x00\x00\x00\x27\x0f" + GOOD[5:], "SerializationError"),
    ("another contract's schema id", another_contract(), "SerializationError"),
    ("fails the request's validation", encoded(model_name="../etc"), "RequestError"),
    # fastavro raises OverflowError for a timestamp past year 9999: wrapped by the serde.
    ("timestamp out of range", encoded(requested_at=2**62), "SerializationError"),
]


@dataclass
class World:
    events: list[str]
    stop: threading.Event
    consumer: fakes.Consumer
    producer: fakes.Producer
    pipeline: fakes.Pipeline
    metrics: TrainerMetrics
    dependencies: Dependencies
    worker: RequestWorker
    sleeps: list[float]

    def run(self) -> None:
        self.worker.run(self.stop)

    def letters(self) -> list[dict[str, Any]]:
        out = []
        for key, value, headers in self.producer.sent:
            letter = LETTERS.decode(value)
            assert headers == {"routeiq-consumer": CONSUMER.encode()}
            letter["_key"] = key.decode()
            out.append(letter)
        return out

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels or None) or 0.0


def deps_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What ``routeiq.dependencies`` logged (the worker's own lines are checked apart)."""
    return [r for r in caplog.records if r.name == DEPS_LOG]


def world(
    values: list[bytes | None],
    *,
    recalled: list[tuple[bytes, str]] | None = None,
    producer_failing: int = 0,
    recall_fails: int = 0,
    script: list[BaseException | str] | None = None,
    registry_fails: int = 0,
    extra: list[Message | None] | None = None,
    clock: Clock | None = None,
    stop_on_sleep: bool = False,
) -> World:
    events: list[str] = []
    stop = threading.Event()
    clock = clock or Clock()
    messages: list[Message | None] = list(extra or [])
    messages += [Message(v, offset) for offset, v in enumerate(values)]
    consumer = fakes.Consumer(messages, stop, events)
    producer = fakes.Producer(events, failing=producer_failing)
    metrics = TrainerMetrics()
    dependencies = Dependencies(
        log=logging.getLogger(DEPS_LOG), registry=metrics.registry, clock=clock
    )
    pipeline = fakes.Pipeline(list(script or []))
    sleeps: list[float] = []
    failing_reads = [recall_fails]

    def reader() -> fakes.RecallReader:
        if failing_reads[0]:
            failing_reads[0] -= 1
            raise TransportError("cannot create Kafka consumer: brokers down")
        return fakes.RecallReader(recalled or [], events)

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds
        if stop_on_sleep:
            stop.set()

    worker = RequestWorker(
        consumer=consumer,  # type: ignore[arg-type]
        topic=TOPIC,
        serde=AvroSerde.for_contract(
            RETRAIN_REQUEST,
            subject=f"{TOPIC}-value",
            resolver=FlakyResolver(RESOLVER, registry_fails),
        ),
        pipeline=pipeline,  # type: ignore[arg-type]
        dead_letters=DeadLetterSink(
            producer=producer,  # type: ignore[arg-type]
            serde=LETTERS,
            topic=DEAD_LETTER_TOPIC,
            consumer=CONSUMER,
        ),
        recall_reader=reader,  # type: ignore[arg-type]
        metrics=metrics,
        dependencies=dependencies,
        retry_attempts=3,
        retry_backoff_s=2.0,
        sleep=sleep,
        clock=clock,
    )
    return World(events, stop, consumer, producer, pipeline, metrics, dependencies, worker, sleeps)


def test_every_poison_kind_is_one_dead_letter_acknowledged_before_its_commit(caplog) -> None:
    caplog.set_level(logging.INFO)
    w = world([value for _, value, _ in POISON] + [GOOD])
    w.run()  # returns only when the fake consumer ran dry: no record stopped it

    letters = w.letters()
    assert [d["_key"] for d in letters] == [f"{TOPIC}/0/{i}" for i in range(len(POISON))]
    assert [d["error_type"] for d in letters] == [kind for _, _, kind in POISON]
    assert [d["value"] for d in letters] == [v for _, v, _ in POISON]
    assert all(d["consumer"] == CONSUMER and d["source_topic"] == TOPIC for d in letters)
    assert "does not resolve to" in letters[5]["reason"]
    assert "model name '../etc' is not allowed" in letters[6]["reason"]
    # Each dead letter is acknowledged before its record's offset is committed.
    for offset in range(len(POISON)):
        assert w.events.index(f"dead letter {TOPIC}/0/{offset}") < w.events.index(
            f"commit {offset}"
        )
    assert w.consumer.commits == [(0, i) for i in range(len(POISON) + 1)]
    assert [r.request_id for r in w.pipeline.seen] == ["req-1"]  # the good one, trained
    assert w.worker.state.processed == 1
    assert w.worker.state.failed == len(POISON)
    assert w.count("routeiq_trainer_dead_letters_total") == len(POISON)
    assert w.count("routeiq_trainer_poison_records_total", error_type="SerializationError") == 7
    assert w.count("routeiq_trainer_poison_records_total", error_type="RequestError") == 1
    # One WARNING per poison record, with a short reason (no schema dump).
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(POISON)
    assert all(len(r.getMessage()) < 400 for r in warnings)
    assert w.consumer.closed


def test_a_restart_after_the_flush_writes_no_second_dead_letter(caplog) -> None:
    values = [value for _, value, _ in POISON] + [GOOD]
    first = world(values)
    first.run()
    written = [(key, CONSUMER) for key, _, _ in first.producer.sent]
    # Crashed between the flush and the commit: the restarted worker reads every record
    # again, its sink recalls what this consumer wrote (and not what another one wrote).
    caplog.set_level(logging.INFO)
    restarted = world(values, recalled=[*written, (b"requests/0/99", "routeiq-labeler")])
    restarted.run()
    assert restarted.events[0] == "recall"  # before the first poll
    assert restarted.events.index("recall") < restarted.events.index("poll")
    assert restarted.producer.sent == []
    assert restarted.count("routeiq_trainer_dead_letters_total") == 0
    assert restarted.consumer.commits == [(0, i) for i in range(len(values))]
    assert len(restarted.pipeline.seen) == 1
    assert sum("dead-lettered before a restart" in r.getMessage() for r in caplog.records) == 8


def test_kafka_lost_while_dead_lettering_is_waited_for_and_logged_once(caplog) -> None:
    caplog.set_level(logging.INFO, DEPS_LOG)
    w = world([b"garbage", GOOD], producer_failing=3)
    w.run()
    assert [d["_key"] for d in w.letters()] == [f"{TOPIC}/0/0"]
    assert w.sleeps == [5.0, 5.0, 5.0]
    assert w.events.index(f"dead letter {TOPIC}/0/0") < w.events.index("commit 0")
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in deps_log(caplog)] == [
        ("WARNING", "kafka unavailable"),
        ("INFO", "kafka available again after 15 s"),
    ]
    assert len(w.pipeline.seen) == 1


def test_a_failing_registry_holds_the_record_instead_of_dead_lettering_it(caplog) -> None:
    caplog.set_level(logging.INFO, DEPS_LOG)
    w = world([GOOD], registry_fails=2)
    w.run()
    assert w.producer.sent == []
    assert len(w.pipeline.seen) == 1
    assert w.consumer.commits == [(0, 0)]
    assert [r.getMessage().split(":")[0] for r in deps_log(caplog)] == [
        "registry unavailable",
        "registry available again after 10 s",
    ]


def test_recall_waits_for_kafka_before_the_first_poll() -> None:
    w = world([GOOD], recall_fails=2)
    w.run()
    assert w.sleeps[:2] == [5.0, 5.0]
    assert w.events[:2] == ["recall", "subscribe"]
    assert w.dependencies["kafka"].up


def test_stopping_while_kafka_is_down_leaves_the_record_uncommitted() -> None:
    w = world([b"garbage", GOOD], producer_failing=100, stop_on_sleep=True)
    w.run()
    assert w.producer.sent == []
    assert w.consumer.commits == []
    assert w.consumer.closed
    assert w.worker.state.stopping
    assert w.worker.state.error is None


def test_consumer_errors_fold_into_one_loss_and_a_probe_sees_recovery(caplog) -> None:
    caplog.set_level(logging.INFO, DEPS_LOG)
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
    errors: list[Message | None] = [Message(None, -1, error_=down) for _ in range(500)]
    clock = Clock(1.0)
    w = world([GOOD], extra=[*errors, None], clock=clock)
    w.run()
    first, *reminders, last = [r.getMessage() for r in deps_log(caplog)]
    assert first.startswith("kafka unavailable: KafkaError{code=_ALL_BROKERS_DOWN")
    assert all(m.startswith("kafka still unavailable after") for m in reminders)
    assert last.startswith("kafka available again after")
    # The loss once, then at most one reminder a minute: not one line per error.
    assert 1 <= len(reminders) <= (clock.now - 1000) / 60
    assert len(w.pipeline.seen) == 1
    assert w.dependencies.ready


def test_a_request_that_cannot_be_trained_is_dead_lettered_at_once() -> None:
    w = world([GOOD], script=[RequestError("a requested shard is missing: s3://b/k")])
    w.run()
    (letter,) = w.letters()
    assert letter["error_type"] == "RequestError"
    assert "req-1 cannot be done: RequestError: a requested shard is missing" in letter["reason"]
    assert len(w.pipeline.seen) == 1  # not retried
    assert w.count("routeiq_trainer_poison_records_total", error_type="RequestError") == 0
    assert w.consumer.commits == [(0, 0)]


def test_a_lost_dependency_during_training_is_retried_and_logged_once(caplog) -> None:
    caplog.set_level(logging.INFO, DEPS_LOG)
    w = world([GOOD], script=[TrackingError("MLflow down"), TrackingError("MLflow down")])
    w.run()
    assert w.producer.sent == []
    assert w.sleeps == [2.0, 4.0]
    assert len(w.pipeline.seen) == 3
    assert [r.getMessage() for r in deps_log(caplog)] == [
        "mlflow unavailable: MLflow down",
        "mlflow available again after 6 s",
    ]
    assert w.count("routeiq_dependency_up", dependency="mlflow") == 1


def test_training_that_gives_up_after_retries_is_dead_lettered_not_lost() -> None:
    w = world([GOOD, GOOD], script=[StorageError("S3 down")] * 3 + [RuntimeError("bug")])
    w.run()
    first, second = w.letters()
    assert "gave up after retries: StorageError: S3 down" in first["reason"]
    assert second["error_type"] == "RuntimeError"  # an unexpected error costs one record
    assert w.consumer.commits == [(0, 0), (0, 1)]
    assert not w.dependencies["s3"].up
    assert w.count("routeiq_dependency_up", dependency="s3") == 0


def test_an_outage_during_training_is_waited_out_and_never_dead_lettered(caplog) -> None:
    """MLflow down for longer than the retries last: the request waits (its partition paused,
    the consumer still polling so it keeps its place in the group) and is trained once
    MLflow answers; the outage never costs it an attempt."""
    caplog.set_level(logging.INFO, DEPS_LOG)
    w = world([GOOD], script=[TrackingError("MLflow down")] * 5)
    answers = iter([False] * 12 + [True, False, True, False, True, False, True, False, True])

    def mlflow_probe() -> None:
        if not next(answers):
            raise TrackingError("MLflow: connection refused")

    w.worker.probes = {"mlflow": mlflow_probe}
    w.run()
    assert w.producer.sent == []  # no dead letter: an outage is not the request's fault
    assert len(w.pipeline.seen) == 6  # five failures, each waited out, then trained
    assert w.consumer.commits == [(0, 0)]
    assert w.events.count("pause [0]") == 5
    assert w.events.count("resume [0]") == 5
    assert "poll (paused)" in w.events
    assert w.dependencies["mlflow"].up
    assert next(r.getMessage() for r in deps_log(caplog)) == "mlflow unavailable: MLflow down"


def test_a_failure_while_the_dependency_answers_still_counts_as_an_attempt() -> None:
    """A probe that answers means the failure is this request's (a 4xx from MLflow, say):
    retried with backoff and dead-lettered after the last attempt, not waited on forever."""
    w = world([GOOD], script=[TrackingError("MLflow: 400 bad filter")] * 3)
    w.worker.probes = {"mlflow": lambda: None}
    w.run()
    (letter,) = w.letters()
    assert "gave up after retries" in letter["reason"]
    assert w.sleeps == [2.0, 4.0]
    assert "pause [0]" not in w.events


def test_retries_back_off_to_at_most_30_s() -> None:
    w = world([GOOD], script=[StorageError("S3: 503 slow down")] * 8)
    w.worker.retry_attempts = 8
    w.run()
    assert w.sleeps == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    (letter,) = w.letters()
    assert "gave up after retries" in letter["reason"]


def test_a_lost_dependency_is_probed_back_while_idle() -> None:
    w = world([], extra=[None, None, None], clock=Clock(3.0))
    probed: list[str] = []
    w.worker.probes = {"s3": lambda: probed.append("s3")}
    w.dependencies["s3"].failed(StorageError("S3 down"))
    w.run()
    assert probed == ["s3"]
    assert w.dependencies["s3"].up


def test_the_dependency_gauge_is_on_the_trainer_metrics() -> None:
    w = world([])
    w.dependencies["kafka"].failed("down")
    assert 'routeiq_dependency_up{dependency="kafka"} 0.0' in w.metrics.render().decode()
