"""The schema registry (RouteIQ's own, Confluent-compatible, backed by a Kafka topic)."""

from __future__ import annotations

from routeiq_cli.stack.components.base import Component, ServiceSpec, python_service
from routeiq_cli.stack.settings import StackSettings

REGISTRY = ServiceSpec(
    "schema-registry", "Schema registry", "routeiq_schema_registry", "ROUTEIQ_REGISTRY_"
)


def registry_component(settings: StackSettings) -> Component:
    # Its schemas live in a Kafka topic: it starts after Kafka, before the services.
    port = settings.registry_port
    return python_service(
        settings, REGISTRY, port, clients=["kafka"], environment={}, phase="infra"
    )
