"""The health/metrics app, announcement records against the contract, the embedding cache."""

from __future__ import annotations

import logging

import numpy as np
from routeiq.contracts.catalog import MODEL_ANNOUNCEMENT
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.dependencies import Dependencies
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import minilm_pipeline
from routeiq_trainer.announce import announcement_record
from routeiq_trainer.api import create_app
from routeiq_trainer.bundles import BundleLocation
from routeiq_trainer.core.state import WorkerState
from routeiq_trainer.metrics import TrainerMetrics
from starlette.testclient import TestClient


def _app(state: WorkerState, metrics: TrainerMetrics) -> tuple[TestClient, Dependencies]:
    deps = Dependencies(log=logging.getLogger("test.trainer.deps"), registry=metrics.registry)
    app = create_app(state=state, metrics=metrics, dependencies=deps, device="cpu")
    return TestClient(app), deps


def test_health_and_metrics() -> None:
    state, metrics = WorkerState(), TrainerMetrics()
    client, _ = _app(state, metrics)
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 503  # not consuming yet
    state.started = True
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["device"] == "cpu"
    metrics.requests.labels("trained").inc()
    metrics.training_seconds.labels("knn").observe(0.3)
    body = client.get("/metrics").text
    assert 'routeiq_trainer_requests_total{outcome="trained"} 1.0' in body
    assert 'routeiq_trainer_training_seconds_count{router_type="knn"} 1.0' in body
    state.error = "dead-letter topic unreachable"
    assert client.get("/health/ready").status_code == 503


def test_a_lost_dependency_is_named_on_ready_and_in_metrics_without_unreadiness() -> None:
    state, metrics = WorkerState(started=True), TrainerMetrics()
    client, deps = _app(state, metrics)
    deps["kafka"].recovered()
    deps["mlflow"].recovered()
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["dependencies"] == {"kafka": {"up": True}, "mlflow": {"up": True}}

    deps["mlflow"].failed("MLflow: connection refused")
    ready = client.get("/health/ready")
    # The worker waits for MLflow and resumes on its own: degraded, not unready.
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["kafka"] == {"up": True}
    mlflow = body["dependencies"]["mlflow"]
    assert mlflow["up"] is False
    assert mlflow["error"] == "MLflow: connection refused"
    assert mlflow["down_for_s"] >= 0
    text = client.get("/metrics").text
    assert 'routeiq_dependency_up{dependency="mlflow"} 0.0' in text
    assert 'routeiq_dependency_up{dependency="kafka"} 1.0' in text
    deps["mlflow"].recovered()
    assert client.get("/health/ready").json()["status"] == "ready"


def test_an_announcement_record_is_a_valid_model_announcement() -> None:
    serde = AvroSerde.for_contract(MODEL_ANNOUNCEMENT, subject="s-value", resolver=LocalResolver())
    record = announcement_record(
        model_name="router",
        version="v20261123T000000000-abcdef12",
        action="PROMOTE",
        router_type="knn",
        bundle=BundleLocation("routeiq-models", "models/router/v1/", "ab" * 32, 1234, "vid"),
        signature={"algorithm": "ed25519", "key_id": "k", "value": "c2ln"},
        metrics={"apgr": 0.64},
        previous_version=None,
        mlflow_run_id="run",
        mlflow_model_version="1",
        reason="beats random",
        announced_by="trainer",
    )
    decoded = serde.decode(serde.encode(record))
    assert decoded["bundle"] == record["bundle"]
    assert decoded["metrics"] == {"apgr": 0.64}
    assert decoded["action"] == "PROMOTE"


def test_the_embedding_cache_is_keyed_by_the_texts_and_reused(tmp_path) -> None:
    store = FeatureStore(cache_dir=tmp_path, featurizer=minilm_pipeline())
    texts = ["What is 2 + 2?", "Write a haiku."]
    first = store.embed(texts)
    path = store.path(texts)
    assert path.is_file()
    assert first.shape == (2, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    # The cached file is what a second call returns (overwrite it to prove it is read).
    np.save(path, np.zeros((2, 384), dtype=np.float32), allow_pickle=False)
    assert np.array_equal(store.embed(texts), np.zeros((2, 384)))
    assert store.path(list(reversed(texts))) != path
    assert "What is" not in path.name
