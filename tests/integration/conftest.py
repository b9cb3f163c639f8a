"""Integration tier: the real local stack, started once per session (or reused if already up).

Each test gets its own topics, subjects and consumer groups from factory fixtures, so tests
never see each other's data and can run against a long-lived developer stack.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.topics import ROUTER_DECISIONS, TopicSpec
from routeiq.kafka import apply_topics, make_admin
from routeiq.settings import KafkaSettings, RedisSettings, RegistrySettings, S3Settings
from routeiq_cli.stack.settings import StackSettings
from support.stack import running_stack


@dataclass(frozen=True)
class Stack:
    settings: StackSettings
    kafka: KafkaSettings
    registry: RegistrySettings
    s3: S3Settings
    redis: RedisSettings


@pytest.fixture(scope="session")
def stack() -> Stack:
    settings, kafka = running_stack()
    return Stack(settings, kafka, settings.registry, settings.s3, settings.redis)


@pytest.fixture(scope="session")
def admin(stack: Stack) -> AdminClient:
    return make_admin(stack.kafka)


@pytest.fixture(scope="session")
def registry_client(stack: Stack) -> SchemaRegistryClient:
    return SchemaRegistryClient(stack.registry.client_config())


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique("orders")`` → ``orders-<8 hex>``: a name no other test uses."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic_factory(admin: AdminClient, unique) -> Iterator[Callable[..., TopicSpec]]:
    """Create private copies of declared topics; they are deleted after the test."""
    created: list[str] = []

    def make(template: TopicSpec = ROUTER_DECISIONS, *, partitions: int | None = None) -> TopicSpec:
        spec = template.with_name(unique(f"test.{template.name}"))
        if partitions is not None:
            spec = TopicSpec(spec.name, partitions, spec.contract, spec.key, spec.configs)
        apply_topics(admin, [spec])
        created.append(spec.name)
        return spec

    yield make
    if created:
        for future in admin.delete_topics(created, operation_timeout=30).values():
            future.result()
