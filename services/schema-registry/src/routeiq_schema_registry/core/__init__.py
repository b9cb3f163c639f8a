"""The registry without HTTP: the log abstraction, the state machine and the operations."""

from routeiq_schema_registry.core.log import InMemorySchemaLog, LogBatch, SchemaLog
from routeiq_schema_registry.core.registry import SchemaRegistry, SchemaRequest
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
