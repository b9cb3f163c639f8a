"""Fixtures for the trainer against the real stack: GSM8K shards, private buckets and topics."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from integration.trainer.helpers import (
    WINDOW_MS,
    Harness,
    gsm8k_rows,
    make_harness,
    write_windows,
)
from minio import Minio
from routeiq.routing.bundle import generate_ed25519
from routeiq.routing.datasets import RoutingDataset, load_gsm8k
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.shards import write_shard
from routeiq.storage import ArtifactStore, make_minio


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
    made: list[Harness] = []

    def make(**overrides) -> Harness:
        overrides.setdefault("shards_bucket", gsm8k_shards[0])
        harness = make_harness(
            stack=stack,
            topic_factory=topic_factory,
            registry_client=registry_client,
            unique=unique,
            models_bucket=models_bucket,
            cache_dir=trainer_cache,
            signing_key=signing_key,
            **overrides,
        )
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.stop_worker()
        harness.services.close()
        _drop_prefix(minio_client, models_bucket, f"models/{harness.model_name}")
