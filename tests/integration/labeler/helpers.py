"""Helpers for the labeler's integration tests: worker processes, producers, readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from routeiq.contracts.catalog import DEAD_LETTER, FEEDBACK, RETRAIN_REQUEST, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde
from routeiq.contracts.topics import (
    DEAD_LETTERS,
    FEEDBACK_EVENTS,
    RETRAIN_REQUESTS,
    ROUTER_DECISIONS,
    TopicSpec,
)
from routeiq.kafka import make_consumer, make_producer
from routeiq.routing.embedding import MODEL_NAME
from routeiq.shards import list_manifests, read_manifest, read_shard
from routeiq.storage import ArtifactStore
from support.kafka import read_messages
from support.processes import free_port as free_port  # conftest.py imports it from here

REPO = Path(__file__).resolve().parents[3]
TABLES = ("decisions", "feedback", "meta")
MODELS = ("gpt-4-1106-preview", "mixtral-8x7b")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def decision(
    *,
    ts: int,
    selected: str = MODELS[0],
    status: str = "SUCCESS",
    cost: float | None = 0.01,
    exploration: bool = False,
    propensities: tuple[float, float] = (0.9, 0.1),
    embedding: list[float] | None = None,
    latency_ms: float = 900.0,
) -> dict[str, Any]:
    """A valid RouterDecision record (fresh decision id)."""
    event_id = str(uuid.uuid4())
    return {
        "event_id": event_id,
        "trace_id": uuid.uuid4().hex,
        "span_id": uuid.uuid4().hex[:16],
        "timestamp": ts,
        "input": {
            "query_length": 42,
            "requested_model": "router-auto",
            "user_id": None,
            "team_id": "t1",
        },
        "strategy": {"name": "knn", "version": "1"},
        "candidate_deployments": [
            {
                "model_name": m,
                "provider": "offline",
                "score": None,
                "available": True,
                "propensity": p,
            }
            for m, p in zip(MODELS, propensities, strict=True)
        ],
        "selected_deployment": selected,
        "selection_reason": "argmax",
        "timings": {"total_ms": latency_ms + 5.0, "strategy_ms": 3.0, "embedding_ms": 2.0},
        "outcome": {
            "status": status,
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
            "error_type": None if status == "SUCCESS" else "APIError",
            "cost_usd": cost,
            "upstream_latency_ms": latency_ms,
        },
        "fallback": {"used": False, "attempted_deployments": [], "reason": None},
        "router_version": "v1",
        "exploration": exploration,
        "ab_arm": "A",
        "query_embedding": embedding,
        "embedding_model": MODEL_NAME if embedding is not None else None,
        "domain": "math",
    }


def feedback(
    decision_id: str,
    score: float,
    *,
    candidate: str | None = None,
    cost: float | None = None,
) -> dict[str, Any]:
    """A valid Feedback record (fresh feedback id)."""
    return {
        "feedback_id": str(uuid.uuid4()),
        "decision_id": decision_id,
        "score": score,
        "source": "judge",
        "created_at": now_ms(),
        "candidate": candidate,
        "judge_model": "gpt-4o",
        "cost_usd": cost,
        "latency_ms": None,
        "trace_id": None,
    }


# The labeler's four topics (for the tests' private copies and the benchmark's): the field of
# ``LabelerTopics`` that holds it, the declared topic, its value contract.
LABELER_TOPICS = (
    ("decisions", ROUTER_DECISIONS, ROUTER_DECISION),
    ("feedback", FEEDBACK_EVENTS, FEEDBACK),
    ("retrain", RETRAIN_REQUESTS, RETRAIN_REQUEST),
    ("deadletter", DEAD_LETTERS, DEAD_LETTER),
)


@dataclass
class LabelerTopics:
    decisions: TopicSpec
    feedback: TopicSpec
    retrain: TopicSpec
    deadletter: TopicSpec
    serdes: dict[str, AvroSerde]

    def settings(self) -> dict[str, str]:
        """The labeler settings that point it at these topics."""
        return {
            "decisions_topic": self.decisions.name,
            "feedback_topic": self.feedback.name,
            "retrain_topic": self.retrain.name,
            "deadletter_topic": self.deadletter.name,
        }


def labeler_env(
    stack: Any, *, app_id: str, bucket: str, port: int, data_dir: Path, **settings: Any
) -> dict[str, str]:
    """The environment of a ``python -m routeiq_labeler`` on the local stack (no other
    ``ROUTEIQ_LABELER_*`` leaks in); ``settings`` become ``ROUTEIQ_LABELER_<NAME>``.
    The benchmark (bench/labeler.py) starts its worker with it too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_LABELER_")}
    env["PYTHONWARNINGS"] = "ignore"
    base = {
        "app_id": app_id,
        "shards_bucket": bucket,
        "kafka__bootstrap_servers": stack.kafka.bootstrap_servers,
        "kafka__session_timeout_ms": 6000,
        "registry__url": stack.registry.url,
        "s3__endpoint": stack.s3.endpoint,
        "s3__access_key": stack.s3.access_key.get_secret_value(),
        "s3__secret_key": stack.s3.secret_key.get_secret_value(),
        "web_port": port,
        "data_dir": data_dir,
    }
    env.update({f"ROUTEIQ_LABELER_{k.upper()}": str(v) for k, v in {**base, **settings}.items()})
    return env


@dataclass
class LabelerProcess:
    """One ``python -m routeiq_labeler`` worker."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LabelerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "routeiq_labeler"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"{self.url}/health/ready", timeout=2)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code in (200, 503) else None

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"labeler exited early:\n{self.tail()}")
            status = self.status()
            if status and status["ready"]:
                return status
            time.sleep(0.3)
        raise AssertionError(f"labeler not ready within {timeout}s:\n{self.tail()}")

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics as {"name{labels}": value}."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, prefix: str) -> float:
        """Sum of every sample whose name starts with ``prefix``."""
        return sum(v for k, v in self.metrics().items() if k.startswith(prefix))

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class EventProducer:
    """Produces Avro decisions and feedback to the test's topics; remembers where they went."""

    def __init__(self, stack, topics: LabelerTopics) -> None:
        self._topics = topics
        self._producer = make_producer(stack.kafka, client_id="labeler-test")
        self.positions: dict[str, tuple[str, int, int]] = {}

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        tag: str | None,
    ):
        def delivered(err, msg):
            assert err is None, err
            if tag is not None:
                self.positions[tag] = (msg.topic(), msg.partition(), msg.offset())

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        self._producer.produce(topic, **kwargs)
        self._producer.poll(0)

    def decision(
        self,
        record: dict,
        *,
        partition: int | None = None,
        key: bytes | None = None,
        tag: str | None = None,
    ) -> None:
        value = self._topics.serdes["decisions"].encode(record)
        self._produce(
            self._topics.decisions.name, key or record["event_id"].encode(), value, partition, tag
        )

    def feedback(self, record: dict, *, partition: int | None = None) -> None:
        value = self._topics.serdes["feedback"].encode(record)
        self._produce(
            self._topics.feedback.name, record["decision_id"].encode(), value, partition, None
        )

    def raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        tag: str | None = None,
    ) -> None:
        self._produce(topic, key, value, partition, tag)

    def flush(self) -> None:
        assert self._producer.flush(30) == 0


def consume(
    stack, topic: str, serde: AvroSerde, *, count: int, timeout: float = 30
) -> list[tuple[Any, dict]]:
    """Read ``count`` records from ``topic`` (from the beginning) as (message, decoded)."""
    consumer = make_consumer(
        stack.kafka, group_id=f"labeler-test-{uuid.uuid4().hex[:8]}", client_id="labeler-test"
    )
    consumer.subscribe([topic])
    messages = read_messages(consumer, count, timeout=timeout)
    return [(msg, serde.decode(msg.value())) for msg in messages]


def dead_letter_keys(stack, topic: str, *, timeout: float = 30) -> list[bytes]:
    """The key of every record in ``topic``, read to each partition's end (dead letters are
    keyed ``topic/partition/offset`` of their source record)."""
    consumer = make_consumer(
        stack.kafka, group_id=f"labeler-test-{uuid.uuid4().hex[:8]}", client_id="labeler-test"
    )
    partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
        for p in partitions
    }
    consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
    messages = read_messages(consumer, sum(ends.values()), timeout=timeout)
    return [m.key() for m in messages]


def delete_group(admin: AdminClient, group: str, *, timeout: float = 30) -> None:
    """Forget ``group``'s committed offsets (its members must have left), so the next member
    replays its topics from the start."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.delete_consumer_groups([group], request_timeout=10)[group].result()
            return
        except KafkaException as exc:
            # NON_EMPTY_GROUP until the broker has seen the last member leave.
            if exc.args[0].code() != KafkaError.NON_EMPTY_GROUP or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def shard_rows(store: ArtifactStore, bucket: str) -> dict[str, list[dict]]:
    """Every shard's rows by manifest key (verified against the manifests)."""
    out = {}
    for key in list_manifests(store, bucket):
        manifest = read_manifest(store, bucket, key)
        out[key] = read_shard(store, bucket, manifest).to_pylist()
    return out


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.3, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
