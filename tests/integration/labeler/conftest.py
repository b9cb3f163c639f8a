"""Fixtures for the labeler's integration tests: private topics, bucket, worker processes.

Each test gets its own decisions/feedback/retrain/dead-letter topics (schemas registered under
their subjects), its own shards bucket and its own Faust app id, so its consumer group and
changelog topics are private too; all are deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from integration.labeler.helpers import (
    LABELER_TOPICS,
    TABLES,
    EventProducer,
    LabelerProcess,
    LabelerTopics,
    free_port,
    labeler_env,
)
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.storage import ArtifactStore, make_minio


@pytest.fixture
def labeler_topics(topic_factory, registry_client) -> LabelerTopics:
    specs = {}
    resolver = RegistryResolver(registry_client)
    serdes = {}
    for name, template, contract in LABELER_TOPICS:
        spec = topic_factory(template)
        registry_client.register_schema(spec.value_subject, Schema(contract.working_text(), "AVRO"))
        specs[name] = spec
        serdes[name] = AvroSerde.for_topic(contract, spec.name, resolver=resolver)
    return LabelerTopics(**specs, serdes=serdes)


@pytest.fixture
def store(stack) -> ArtifactStore:
    return ArtifactStore(make_minio(stack.s3))


@pytest.fixture
def bucket(stack, store, unique) -> Iterator[str]:
    """A private shards bucket, emptied and removed afterwards."""
    name = unique("labeler-test")
    store.ensure_bucket(name)
    yield name
    client = make_minio(stack.s3)
    for obj in client.list_objects(name, recursive=True):
        client.remove_object(name, obj.object_name)
    client.remove_bucket(name)


@pytest.fixture
def labeler_factory(
    stack, labeler_topics, bucket, unique, tmp_path, admin
) -> Iterator[Callable[..., LabelerProcess]]:
    """``labeler_factory(**settings)`` → a started worker on the test's topics and bucket.

    Calling it again with the same ``app_id`` restarts the same logical worker (state from
    its changelog topics, offsets from its consumer group).
    """
    started: list[LabelerProcess] = []
    app_ids: set[str] = set()

    def make(*, app_id: str | None = None, **settings: Any) -> LabelerProcess:
        app_id = app_id or unique("labeler")
        app_ids.add(app_id)
        port = free_port()
        env = labeler_env(
            stack,
            app_id=app_id,
            bucket=bucket,
            port=port,
            data_dir=tmp_path / f"data-{app_id}",
            **{
                **labeler_topics.settings(),
                "tick_interval_s": 0.5,
                "idle_timeout_s": 1,
                "commit_interval_s": 1,
                "log_level": "info",
                **settings,
            },
        )
        worker = LabelerProcess(env=env, port=port, log_path=tmp_path / f"{app_id}.log")
        started.append(worker)
        return worker.start()

    yield make
    for worker in started:
        worker.stop()
    changelogs = [f"{a}-{t}-changelog" for a in app_ids for t in TABLES]
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for t in changelogs if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()


@pytest.fixture
def events(stack, labeler_topics) -> EventProducer:
    return EventProducer(stack, labeler_topics)
