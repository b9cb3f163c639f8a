"""Clients the CLI's commands build from the stack's settings, one way each."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.catalog import Contract
from routeiq.contracts.serde import AvroSerde, RegistryResolver

from routeiq_cli.stack.settings import StackSettings

# The client id every record the CLI produces carries (and a retrain request's requester).
CLIENT_ID = "routeiq-cli"


def registry_client(settings: StackSettings) -> SchemaRegistryClient:
    return SchemaRegistryClient(settings.registry.client_config())


def topic_serde(
    settings: StackSettings,
    contract: Contract,
    topic: str,
    *,
    resolver: RegistryResolver | None = None,
) -> AvroSerde:
    """The serde for ``topic``'s values under ``contract``, ids from the stack's registry
    (pass ``resolver`` to share one registry client between serdes)."""
    resolver = resolver or RegistryResolver(registry_client(settings))
    return AvroSerde.for_topic(contract, topic, resolver=resolver)
