"""Fixtures for the trainer against the real stack: GSM8K shards, private buckets and topics."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from integration.trainer.helpers import WINDOW_MS, Harness, gsm8k_rows, write_windows
from minio import Minio
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import DEAD_LETTERS, MODEL_ANNOUNCEMENTS, RETRAIN_REQUESTS
from routeiq.routing.bundle import generate_ed25519
from routeiq.routing.datasets import RoutingDataset, load_gsm8k
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.shards import write_shard
from routeiq.storage import ArtifactStore, make_minio
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.wiring import build_services
from support.kafka import register_values


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: minutes of CPU (BERT fine-tuning); still part of `make test`"
    )


def _drop_prefix(client: Minio, bucket: str, prefix: str) -> None:
    """Remove every object version under ``prefix`` (best effort: the names are unique)."""
    try:
        for obj in client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True):
            client.remove_object(bucket, str(obj.object_name), version_id=obj.version_id)
    except Exception as exc:
        print(f"could not clean s3://{bucket}/{prefix}: {exc}")


def _drop_bucket(client: Minio, bucket: str) -> None:
    _drop_prefix(client, bucket, "")
    try:
        client.remove_bucket(bucket)
    except Exception as exc:
        print(f"could not remove bucket {bucket}: {exc}")


@pytest.fixture(scope="session")
def minio_client(stack) -> Minio:
    return make_minio(stack.s3)


@pytest.fixture(scope="session")
def trainer_cache(stack) -> Path:
    """Embedding cache shared across runs (GSM8K takes ~40 s to embed on a small CPU)."""
    path = stack.settings.state / "trainer-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def gsm8k(trainer_cache) -> tuple[RoutingDataset, np.ndarray]:
    """GSM8K without the contaminated prompts, and the prompts' MiniLM embeddings."""
    ds = load_gsm8k()
    return ds, FeatureStore(cache_dir=trainer_cache, featurizer=minilm_pipeline()).embed(ds.prompts)


@pytest.fixture(scope="session")
def gsm8k_shards(stack, minio_client, gsm8k) -> Iterator[tuple[str, list[str], list[dict]]]:
    """A private shards bucket holding GSM8K as labelled decisions in 6-hour windows, plus a
    late shard that repeats 25 decisions (which the trainer must de-duplicate)."""
    bucket = f"test-shards-{uuid.uuid4().hex[:8]}"
    store = ArtifactStore(minio_client)
    store.ensure_bucket(bucket)
    rows = gsm8k_rows(*gsm8k)
    keys = write_windows(store, bucket, rows)
    repeated = [dict(r, feedback_count=0) for r in rows[:25]]
    start = int(repeated[0]["window_start"].timestamp() * 1000)
    late = write_shard(
        store,
        bucket,
        repeated,
        window_start_ms=start,
        window_end_ms=start + WINDOW_MS,
        partition=1,
        late=True,
    )
    keys.append(late.key.replace(".parquet", ".manifest.json"))
    yield bucket, keys, rows
    _drop_bucket(minio_client, bucket)


@pytest.fixture(scope="session")
def bandit_shards(minio_client, gsm8k_shards) -> Iterator[str]:
    """The same decisions as production would log them: only the served model's outcome."""
    bucket = f"test-bandit-{uuid.uuid4().hex[:8]}"
    store = ArtifactStore(minio_client)
    store.ensure_bucket(bucket)
    rows = [
        dict(r, outcome_models=None, outcome_qualities=None, outcome_costs=None)
        for r in gsm8k_shards[2]
    ]
    write_windows(store, bucket, rows)
    yield bucket
    _drop_bucket(minio_client, bucket)


@pytest.fixture
def private_bucket(minio_client) -> Iterator[str]:
    """An empty bucket of the test's own, removed afterwards."""
    bucket = f"test-private-{uuid.uuid4().hex[:8]}"
    ArtifactStore(minio_client).ensure_bucket(bucket)
    yield bucket
    _drop_bucket(minio_client, bucket)


@pytest.fixture(scope="session")
def signing_key() -> str:
    return generate_ed25519()[0]


@pytest.fixture
def models_bucket(stack) -> str:
    """The stack's versioned models bucket: each test writes under its own unique model
    names (``models/<name>/...``), removed afterwards. (A bucket per test would exhaust
    SeaweedFS's volumes: each bucket reserves several.)"""
    return stack.settings.models_bucket


@pytest.fixture
def harness_factory(
    stack,
    topic_factory,
    registry_client,
    unique,
    gsm8k_shards,
    models_bucket,
    minio_client,
    trainer_cache,
    signing_key,
) -> Iterator[Callable[..., Harness]]:
    """``harness_factory(**settings)``: the trainer's services on private request, announcement
    and dead-letter topics (value schemas registered), reading the GSM8K shards; ``settings``
    override its ``TrainerSettings``. Each harness's workers and models go afterwards."""
    made: list[Harness] = []

    def make(**overrides: Any) -> Harness:
        specs = {
            "request": topic_factory(RETRAIN_REQUESTS),
            "announcement": topic_factory(MODEL_ANNOUNCEMENTS),
            "dead_letter": topic_factory(DEAD_LETTERS),
        }
        register_values(registry_client, {spec.name: spec.contract for spec in specs.values()})
        resolver = RegistryResolver(registry_client)
        values: dict[str, Any] = {
            "kafka": stack.kafka,
            "registry": stack.registry,
            "s3": stack.s3,
            "requests_topic": specs["request"].name,
            "announcements_topic": specs["announcement"].name,
            "deadletter_topic": specs["dead_letter"].name,
            "consumer_group": unique("trainer-group"),
            "shards_bucket": gsm8k_shards[0],
            "models_bucket": models_bucket,
            "mlflow_tracking_uri": stack.settings.mlflow_url,
            "signing_key": signing_key,
            "signing_algorithm": "ed25519",
            "router_types": ("knn",),
            # The shards these tests write carry MiniLM vectors (GSM8K embedded by the packaged
            # MiniLM, or synthetic 384-d ones): the pipeline every pre-pipeline gateway logged.
            "features": "minilm",
            "cache_dir": trainer_cache,
            "retry_attempts": 2,
            "retry_backoff_s": 0.5,
            "instance_id": "trainer-integration-test",
        }
        values.update(overrides)
        settings = TrainerSettings.load({}, **values)
        harness = Harness(
            settings=settings,
            services=build_services(settings),
            stack=stack,
            model_name=unique("router"),
            serdes={
                kind: AvroSerde.for_contract(
                    spec.contract, subject=spec.value_subject, resolver=resolver
                )
                for kind, spec in specs.items()
            },
        )
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.stop_worker()
        harness.services.close()
        _drop_prefix(minio_client, models_bucket, f"models/{harness.model_name}")
