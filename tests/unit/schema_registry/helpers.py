"""Schema texts, requests and logs for the registry's unit tests."""

from __future__ import annotations

import json
from typing import Any

from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry, SchemaRequest
from routeiq_schema_registry.errors import StoreError


def record(name: str = "R", *fields: dict[str, Any], namespace: str | None = None) -> str:
    """An Avro record schema's JSON text."""
    doc: dict[str, Any] = {"type": "record", "name": name, "fields": list(fields)}
    if namespace:
        doc["namespace"] = namespace
    return json.dumps(doc)


def field(name: str, type_: Any = "int", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def req(schema: str, **kwargs: Any) -> SchemaRequest:
    return SchemaRequest(schema, **kwargs)


def replayed(log: InMemorySchemaLog) -> SchemaRegistry:
    """A registry that has replayed ``log`` (as one does at start)."""
    registry = SchemaRegistry(log=log)
    registry.start(timeout_s=5)
    return registry


class SlowStartLog(InMemorySchemaLog):
    """Unreachable for the first ``failures`` prepares, like Kafka that is still starting."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def prepare(self, timeout_s: float) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("connection refused")
