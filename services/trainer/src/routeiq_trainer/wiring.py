"""Building the trainer's clients from settings, shared by its three entry points.

``python -m routeiq_trainer`` (the worker), the MLproject entry points
(``routeiq_trainer.project``) and the operator CLI (``routeiq model ...``) all build the same
objects the same way here; each entry point stays the composition root that decides which it
needs and owns their lifetime.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from routeiq.contracts.catalog import DEAD_LETTER, MODEL_ANNOUNCEMENT, RETRAIN_REQUEST
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.deadletters import DeadLetterSink, recall_reader
from routeiq.dependencies import Dependencies
from routeiq.errors import ConfigError
from routeiq.kafka import make_consumer, make_producer
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import SPEC_FILE, Featurizer, open_pipeline, read_pipeline
from routeiq.storage import ArtifactStore, make_minio

from routeiq_trainer.announce import Announcer
from routeiq_trainer.bundles import BundleStore
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.data import DataLoader
from routeiq_trainer.errors import TrackingError
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.ops import ModelOps
from routeiq_trainer.pipeline import TrainingPipeline
from routeiq_trainer.tracking import ModelRegistry
from routeiq_trainer.worker import RequestWorker

# What the trainer needs, as ``/health/ready`` and ``routeiq_dependency_up`` name them.
DEPENDENCIES = ("kafka", "registry", "s3", "mlflow")


def configure_mlflow_client() -> None:
    """Bound MLflow's HTTP retries (its default backs off for minutes on a dead server)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")


def resolve_device(settings: TrainerSettings) -> str:
    """The torch device training will use; ``ConfigError`` if CUDA is asked for but absent."""
    import torch

    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("ROUTEIQ_TRAINER_DEVICE=cuda but CUDA is not available on this host")
    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


def git_commit(settings: TrainerSettings) -> str:
    """The commit the code runs from: the setting, else ``git rev-parse``, else ``unknown``."""
    if settings.git_commit:
        return settings.git_commit
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "unknown"


def build_featurizer(settings: TrainerSettings) -> Featurizer:
    """The trainer's feature pipeline: the one in ``features_dir`` if there is one, else built
    there (the static encoder is distilled once, offline, in about 15 s)."""
    folder = settings.pipeline_dir()
    if (folder / SPEC_FILE).is_file():
        return read_pipeline(folder)
    return open_pipeline(settings.features, folder=folder, sketch_seed=settings.sketch_seed)


def build_store(settings: TrainerSettings) -> ArtifactStore:
    return ArtifactStore(make_minio(settings.s3))


def build_registry(settings: TrainerSettings) -> ModelRegistry:
    configure_mlflow_client()
    return ModelRegistry(
        client=MlflowClient(tracking_uri=settings.mlflow_tracking_uri),
        experiment_prefix=settings.experiment_prefix,
    )


def build_producer(
    settings: TrainerSettings, *, on_error: Callable[[KafkaError], None] | None = None
) -> Producer:
    # One record at a time, and the caller waits for it: do not linger.
    overrides: dict[str, Any] = {"linger.ms": 0, "logger": kafka_logger()}
    if on_error is not None:
        overrides["error_cb"] = on_error
    return make_producer(settings.kafka, client_id=settings.instance_id, overrides=overrides)


def kafka_logger() -> logging.Logger:
    """librdkafka's own log lines through Python logging, so the root handlers' repeat filter
    folds a connection-retry loop instead of it writing straight to stderr."""
    return logging.getLogger("routeiq_trainer.librdkafka")


def ping_mlflow(registry: ModelRegistry) -> None:
    """One cheap MLflow call; ``TrackingError`` while it does not answer."""
    try:
        registry.client.search_experiments(max_results=1)
    except (MlflowException, requests.RequestException) as exc:
        raise TrackingError(f"MLflow: {exc}") from exc


@dataclass
class Services:
    """Everything the trainer's entry points use, built once."""

    settings: TrainerSettings
    store: ArtifactStore
    registry: ModelRegistry
    bundles: BundleStore
    producer: Producer
    resolver: RegistryResolver
    announcer: Announcer
    ops: ModelOps
    metrics: TrainerMetrics
    # Kafka, S3, MLflow and the registry as this process sees them (``/health/ready``, and
    # ``routeiq_dependency_up`` on ``metrics``' registry).
    dependencies: Dependencies
    pipeline: TrainingPipeline | None = None
    embeddings: FeatureStore | None = None  # with the pipeline only

    def request_serde(self) -> AvroSerde:
        return AvroSerde.for_topic(
            RETRAIN_REQUEST, self.settings.requests_topic, resolver=self.resolver
        )

    @property
    def consumer_name(self) -> str:
        """Who the dead letters say gave up: stable across restarts (``recall`` matches it)
        and shared by every worker of the group (any of them may re-read a record)."""
        return f"routeiq-trainer/{self.settings.consumer_group}"

    def dead_letters(self) -> DeadLetterSink:
        return DeadLetterSink(
            producer=self.producer,
            serde=AvroSerde.for_topic(
                DEAD_LETTER, self.settings.deadletter_topic, resolver=self.resolver
            ),
            topic=self.settings.deadletter_topic,
            consumer=self.consumer_name,
        )

    def recall_reader(self) -> Consumer:
        """A consumer that only reads the dead-letter topic back (``DeadLetterSink.recall``
        assigns partitions and closes it; it never commits)."""
        return recall_reader(self.settings.kafka, self.consumer_name, {"logger": kafka_logger()})

    def consumer(self, client_id: str) -> Consumer:
        """The requests consumer in the trainer's group; librdkafka's errors (a stream of
        them in an outage) fold into the Kafka dependency."""
        settings = self.settings
        return make_consumer(
            settings.kafka,
            group_id=settings.consumer_group,
            client_id=client_id,
            overrides={
                "max.poll.interval.ms": settings.max_poll_interval_ms,
                "error_cb": self.dependencies["kafka"].failed,
                "logger": kafka_logger(),
            },
        )

    def probes(self) -> dict[str, Callable[[], object]]:
        """How the worker tells S3 and MLflow are back while no request needs them."""
        bucket = self.settings.models_bucket
        return {
            "s3": lambda: self.store.is_versioned(bucket),
            "mlflow": lambda: ping_mlflow(self.registry),
        }

    def worker(self, *, client_id: str, **options: Any) -> RequestWorker:
        """A request worker over these services with its own consumer; ``options`` replace
        the settings' retry and poll values (tests poll faster)."""
        assert self.pipeline is not None, "built with pipeline=False"
        settings = self.settings
        values: dict[str, Any] = {
            "retry_attempts": settings.retry_attempts,
            "retry_backoff_s": settings.retry_backoff_s,
            "poll_timeout_s": settings.poll_timeout_s,
            **options,
        }
        return RequestWorker(
            consumer=self.consumer(client_id),
            topic=settings.requests_topic,
            serde=self.request_serde(),
            pipeline=self.pipeline,
            dead_letters=self.dead_letters(),
            recall_reader=self.recall_reader,
            metrics=self.metrics,
            dependencies=self.dependencies,
            probes=self.probes(),
            **values,
        )

    def close(self) -> None:
        self.producer.flush(10)


def build_services(
    settings: TrainerSettings,
    *,
    metrics: TrainerMetrics | None = None,
    pipeline: bool = True,
    data_root: Path | None = None,
) -> Services:
    """Clients and logic objects for ``settings`` (``ConfigError`` without a signing key)."""
    metrics = metrics or TrainerMetrics()
    dependencies = Dependencies(
        log=logging.getLogger("routeiq_trainer.dependencies"), registry=metrics.registry
    )
    for name in DEPENDENCIES:
        dependencies[name]  # listed (and gauged) from the start, up until one fails
    signer = settings.signer()
    verifier = settings.verifier()
    store = build_store(settings)
    store.ensure_bucket(settings.models_bucket, versioned=True)
    registry = build_registry(settings)
    bundles = BundleStore(store=store, bucket=settings.models_bucket)
    producer = build_producer(settings, on_error=dependencies["kafka"].failed)
    resolver = RegistryResolver(SchemaRegistryClient(settings.registry.client_config()))
    announcer = Announcer(
        producer=producer,
        serde=AvroSerde.for_topic(
            MODEL_ANNOUNCEMENT, settings.announcements_topic, resolver=resolver
        ),
        topic=settings.announcements_topic,
        announced_by=settings.instance_id,
    )
    ops = ModelOps(
        registry=registry,
        bundles=bundles,
        announcer=announcer,
        verifier=verifier,
        work_dir=settings.cache_dir / "work",
        metrics=metrics,
    )
    services = Services(
        settings=settings,
        store=store,
        registry=registry,
        bundles=bundles,
        producer=producer,
        resolver=resolver,
        announcer=announcer,
        ops=ops,
        metrics=metrics,
        dependencies=dependencies,
    )
    if pipeline:
        embeddings = FeatureStore(
            cache_dir=settings.cache_dir, featurizer=build_featurizer(settings)
        )
        services.embeddings = embeddings
        services.pipeline = TrainingPipeline(
            settings=settings,
            loader=DataLoader.from_settings(
                settings, store=store, embeddings=embeddings, data_root=data_root
            ),
            registry=registry,
            bundles=bundles,
            ops=ops,
            signer=signer,
            embeddings=embeddings,
            metrics=metrics,
            git_commit=git_commit(settings),
        )
    return services
