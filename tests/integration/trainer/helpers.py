"""Shards built from GSM8K and a harness that runs the real trainer worker against the stack."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, TopicPartition
from routeiq.contracts.serde import AvroSerde
from routeiq.kafka import make_consumer, make_producer
from routeiq.routing.datasets import ROUTELLM_PRICES, RoutingDataset
from routeiq.routing.embedding import MODEL_NAME
from routeiq.shards import write_shard
from routeiq.storage import ArtifactStore
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.requests import TrainRequest
from routeiq_trainer.wiring import Services
from routeiq_trainer.worker import RequestWorker

# The GSM8K table's rows get event times one minute apart, in a seeded random order, and are
# cut into 6-hour windows: the newest rows are a random (not an easy) held-out set.
START_MS = 1_763_000_000_000 - (1_763_000_000_000 % 3_600_000)
STEP_MS = 60_000
WINDOW_MS = 6 * 3_600_000
SHARD_SEED = 0


def expected_device() -> str:
    """What ``DEVICE=auto`` picks on this host (the suite also runs on GPU machines)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


def gsm8k_rows(ds: RoutingDataset, embeddings: np.ndarray, *, seed: int = SHARD_SEED) -> list[dict]:
    """One labelled decision per GSM8K prompt, as the labeler would write it.

    A uniform-random logging policy served one of the two models (propensity 0.5) and both
    models' outcomes are known (full information, as in replayed benchmark traffic), with
    costs at RouteLLM's list prices.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds))
    models = list(ds.models)
    rows = []
    for rank, i in enumerate(order):
        when = START_MS + rank * STEP_MS
        prompt = ds.prompts[i]
        tokens_in = _tokens(prompt)
        outs = [_tokens(ds.responses[i].get(m, "") or "x" * 800) for m in models]
        costs = [ROUTELLM_PRICES[m].cost(tokens_in, o) for m, o in zip(models, outs, strict=True)]
        quality = [float(ds.scores[i, j]) for j in range(len(models))]
        pick = int(rng.integers(0, 2))
        rows.append(
            {
                "decision_id": f"gsm8k-{ds.ids[i]}",
                "event_time": datetime.fromtimestamp(when / 1000, tz=UTC),
                "window_start": datetime.fromtimestamp((when - when % WINDOW_MS) / 1000, tz=UTC),
                "late": False,
                "embedding": embeddings[i].tolist(),
                "embedding_model": MODEL_NAME,
                "query_length": len(prompt),
                "domain": "math",
                "requested_model": "auto",
                "strategy": "random",
                "strategy_version": "1",
                "selected_model": models[pick],
                "exploration": True,
                "propensity": 0.5,
                "candidate_models": models,
                "candidate_propensities": [0.5, 0.5],
                "status": "SUCCESS",
                "input_tokens": tokens_in,
                "output_tokens": outs[pick],
                "cost_usd": costs[pick],
                "quality": quality[pick],
                "quality_source": "benchmark:gsm8k",
                "reward": quality[pick],
                "outcome_models": models,
                "outcome_qualities": quality,
                "outcome_costs": costs,
                "feedback_count": 1,
            }
        )
    return rows


def write_windows(store: ArtifactStore, bucket: str, rows: Sequence[dict]) -> list[str]:
    """Write rows as one shard per 6-hour window; returns the manifest keys."""
    by_window: dict[int, list[dict]] = {}
    for row in rows:
        start = int(row["window_start"].timestamp() * 1000)
        by_window.setdefault(start, []).append(row)
    keys = []
    for start, chunk in sorted(by_window.items()):
        manifest = write_shard(
            store,
            bucket,
            chunk,
            window_start_ms=start,
            window_end_ms=start + WINDOW_MS,
            partition=0,
        )
        keys.append(manifest.key.replace(".parquet", ".manifest.json"))
    return keys


@dataclass
class Harness:
    """A private trainer world: its own topics, models bucket, model name and consumer group."""

    settings: TrainerSettings
    services: Services
    stack: Any
    model_name: str
    serdes: dict[str, AvroSerde] = field(default_factory=dict)
    workers: list[RequestWorker] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def worker(self) -> RequestWorker | None:
        return self.workers[0] if self.workers else None

    def request(self, request_id: str | None = None, **kwargs: Any) -> TrainRequest:
        values: dict[str, Any] = {
            "request_id": request_id or f"req-{uuid.uuid4()}",
            "model_name": self.model_name,
            "requested_by": "integration-test",
            "requested_at_ms": int(time.time() * 1000),
            "reason": "MANUAL",
        }
        values.update(kwargs)
        return TrainRequest(**values)

    def produce(
        self,
        request: TrainRequest | bytes | None,
        *,
        key: str | None = None,
        partition: int = -1,
    ) -> None:
        """A request, or raw bytes (``None``: a record without a value) as its value."""
        producer = make_producer(self.stack.kafka, client_id="trainer-test")
        value: bytes | None
        if request is None or isinstance(request, bytes):
            value = request
        else:
            value = self.serdes["request"].encode(request.to_record())
            key = key or request.model_name
        producer.produce(
            self.settings.requests_topic,
            key=(key or self.model_name).encode(),
            value=value,
            partition=partition,
        )
        assert producer.flush(30) == 0

    def start_worker(self, services: Services | None = None) -> RequestWorker:
        """Run a worker (in the harness's consumer group) on a thread; ``services`` built
        separately make it an independent worker, as another process would be."""
        services = services or self.services
        worker = services.worker(
            client_id=f"trainer-test-worker-{len(self.workers)}", poll_timeout_s=0.5
        )
        thread = threading.Thread(target=worker.run, args=(self._stop,), daemon=True)
        thread.start()
        self.workers.append(worker)
        self._threads.append(thread)
        return worker

    def restart_worker(self, services: Services) -> RequestWorker:
        """Stop the workers, then start one over ``services`` (built anew, as a restarted
        process would: no memory of what the first one did) in the same group."""
        self.stop_worker()
        self._stop = threading.Event()
        self.workers.clear()
        self._threads.clear()
        return self.start_worker(services)

    def rewind(self) -> None:
        """Commit offset 0 on every partition of the requests topic, as if the worker had
        crashed after dead-lettering each record and before committing its offset (with the
        workers stopped: the group must have no members)."""
        consumer = make_consumer(
            self.settings.kafka, group_id=self.settings.consumer_group, client_id="rewind"
        )
        try:
            topic = self.settings.requests_topic
            consumer.commit(
                offsets=[TopicPartition(topic, p, 0) for p in range(3)], asynchronous=False
            )
        finally:
            consumer.close()

    def wait_handled(self, count: int, *, timeout: float = 300.0) -> None:
        """Until the workers have finished ``count`` records (processed or dead-lettered)."""
        assert self.workers
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = sum(w.state.processed + w.state.failed for w in self.workers)
            if done >= count and all(w.state.current is None for w in self.workers):
                return
            assert all(t.is_alive() for t in self._threads)
            time.sleep(0.2)
        raise AssertionError(f"workers handled {[w.state for w in self.workers]} in {timeout}s")

    def stop_worker(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def committed_offset(self) -> int:
        """Sum over partitions of the consumer group's committed offsets on the requests topic."""
        consumer = make_consumer(
            self.settings.kafka, group_id=self.settings.consumer_group, client_id="offsets"
        )
        try:
            parts = [TopicPartition(self.settings.requests_topic, p) for p in range(3)]
            return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
        finally:
            consumer.close()

    def read(self, kind: str, *, expect: int | None = None, timeout: float = 20.0) -> list[dict]:
        """Every record now on the private announcements (``kind="announcement"``) or
        dead-letter topic, decoded: reads until every partition reports its end."""
        topic = {
            "announcement": self.settings.announcements_topic,
            "dead_letter": self.settings.deadletter_topic,
        }[kind]
        consumer: Consumer = make_consumer(
            self.stack.kafka,
            group_id=f"reader-{uuid.uuid4().hex[:8]}",
            client_id="trainer-test-reader",
            overrides={"enable.partition.eof": True},
        )
        partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.subscribe([topic])
        out: list[dict] = []
        ended: set[int] = set()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and len(ended) < partitions:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        ended.add(msg.partition())
                    continue
                ended.discard(msg.partition())
                record = self.serdes[kind].decode(msg.value())
                record["_key"] = msg.key().decode() if msg.key() else None
                out.append(record)
        finally:
            consumer.close()
        if expect is not None:
            assert len(out) == expect, [r.get("version") or r.get("reason") for r in out]
        return out


def iter_versions(services: Services, name: str) -> Iterator[Any]:
    yield from services.registry.versions(name)


def settings_env(settings: TrainerSettings, **extra: str) -> dict[str, str]:
    """The ``ROUTEIQ_TRAINER_*`` variables that reproduce ``settings`` in another process."""
    assert settings.signing_key is not None
    env = {
        "KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "KAFKA__SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        "REGISTRY__URL": settings.registry.url,
        "S3__ENDPOINT": settings.s3.endpoint,
        "S3__ACCESS_KEY": settings.s3.access_key.get_secret_value(),
        "S3__SECRET_KEY": settings.s3.secret_key.get_secret_value(),
        "REQUESTS_TOPIC": settings.requests_topic,
        "ANNOUNCEMENTS_TOPIC": settings.announcements_topic,
        "DEADLETTER_TOPIC": settings.deadletter_topic,
        "CONSUMER_GROUP": settings.consumer_group,
        "SHARDS_BUCKET": settings.shards_bucket,
        "MODELS_BUCKET": settings.models_bucket,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "SIGNING_ALGORITHM": settings.signing_algorithm,
        "SIGNING_KEY": settings.signing_key.get_secret_value(),
        "ROUTER_TYPES": ",".join(settings.router_types),
        "CACHE_DIR": str(settings.cache_dir),
        "FEATURES": settings.features,
        "INSTANCE_ID": settings.instance_id,
    }
    env.update(extra)
    return {f"ROUTEIQ_TRAINER_{k}": v for k, v in env.items()}
