"""Schema texts and requests for the registry's unit tests."""

from __future__ import annotations

import json
from typing import Any

from routeiq_schema_registry.core import SchemaRequest


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
