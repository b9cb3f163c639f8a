"""Analytics as a real process on private topics of the running stack.

``analytics_factory(**env)`` starts ``python -m routeiq_analytics`` with its own consumer group
on the private decision, feedback and dead-letter topics of ``analytics_topics`` (value schemas
registered under their TopicNameStrategy subjects) and waits until it is ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema
from integration.analytics.helpers import AnalyticsHandle, AnalyticsTopics
from routeiq.contracts.catalog import DEAD_LETTER, FEEDBACK, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import DEAD_LETTERS, FEEDBACK_EVENTS, ROUTER_DECISIONS
from routeiq.kafka import make_producer
from support.processes import ServiceProcess, free_port


@pytest.fixture
def analytics_topics(stack, registry_client, topic_factory) -> Iterator[AnalyticsTopics]:
    decisions = topic_factory(ROUTER_DECISIONS)
    feedback = topic_factory(FEEDBACK_EVENTS)
    deadletter = topic_factory(DEAD_LETTERS)
    for spec, contract in (
        (decisions, ROUTER_DECISION),
        (feedback, FEEDBACK),
        (deadletter, DEAD_LETTER),
    ):
        registry_client.register_schema(spec.value_subject, Schema(contract.working_text(), "AVRO"))
    resolver = RegistryResolver(registry_client)
    producer = make_producer(stack.kafka, client_id="analytics-test")
    yield AnalyticsTopics(
        decisions_topic=decisions.name,
        feedback_topic=feedback.name,
        deadletter_topic=deadletter.name,
        decision_serde=AvroSerde.for_topic(ROUTER_DECISION, decisions.name, resolver=resolver),
        feedback_serde=AvroSerde.for_topic(FEEDBACK, feedback.name, resolver=resolver),
        deadletter_serde=AvroSerde.for_topic(DEAD_LETTER, deadletter.name, resolver=resolver),
        producer=producer,
    )
    producer.flush(10)


@pytest.fixture
def analytics_factory(
    stack, analytics_topics: AnalyticsTopics, unique, tmp_path: Path
) -> Iterator[Callable[..., AnalyticsHandle]]:
    """``analytics_factory(group_id=None, wait_ready=True, **env)`` → a running service."""
    started: list[ServiceProcess] = []

    def start(
        *, group_id: str | None = None, wait_ready: bool = True, **env: str
    ) -> AnalyticsHandle:
        port = free_port()
        group = group_id or unique("analytics-test")
        full_env = {
            "ROUTEIQ_ANALYTICS_PORT": str(port),
            "ROUTEIQ_ANALYTICS_GROUP_ID": group,
            "ROUTEIQ_ANALYTICS_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "ROUTEIQ_ANALYTICS_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "ROUTEIQ_ANALYTICS_REGISTRY__URL": stack.registry.url,
            "ROUTEIQ_ANALYTICS_DECISIONS_TOPIC": analytics_topics.decisions_topic,
            "ROUTEIQ_ANALYTICS_FEEDBACK_TOPIC": analytics_topics.feedback_topic,
            "ROUTEIQ_ANALYTICS_DEADLETTER_TOPIC": analytics_topics.deadletter_topic,
            "ROUTEIQ_ANALYTICS_POLL_TIMEOUT_S": "0.2",
            "ROUTEIQ_ANALYTICS_DASHBOARD_REFRESH_S": "0",
            **env,
        }
        url = f"http://127.0.0.1:{port}"
        proc = ServiceProcess(
            "routeiq_analytics",
            full_env,
            tmp_path / f"analytics-{port}.log",
            health_url=f"{url}/health/ready" if wait_ready else None,
        ).start(timeout=90)
        started.append(proc)
        return AnalyticsHandle(url=url, process=proc, group_id=group, env=full_env)

    yield start
    for proc in started:
        proc.stop()
