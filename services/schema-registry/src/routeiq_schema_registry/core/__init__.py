"""The registry without HTTP and without Kafka: the log abstraction, the state machine, the
replica that keeps it in step with the log, request validation and the operations. Pure logic:
the Kafka-backed ``SchemaLog`` lives in ``routeiq_schema_registry.kafka_log``."""

from routeiq_schema_registry.core.log import InMemorySchemaLog, LogBatch, SchemaLog
from routeiq_schema_registry.core.registry import SchemaRegistry
from routeiq_schema_registry.core.requests import SchemaRequest
from routeiq_schema_registry.core.state import RegistryState, SchemaVersion

__all__ = [
    "InMemorySchemaLog",
    "LogBatch",
    "RegistryState",
    "SchemaLog",
    "SchemaRegistry",
    "SchemaRequest",
    "SchemaVersion",
]
