"""What a request asks of the registry, checked before any state is read.

A schema as a request carries it (``SchemaRequest``), a version (``parse_version``) and a
compatibility level (``parse_level``) are validated here, with Confluent's error codes, so that
the operations in ``core.registry`` start from values they can trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import avro.schema
from routeiq.contracts.compatibility import CompatibilityLevel, parse_schema

from routeiq_schema_registry.errors import (
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
)

LATEST = "latest"
_MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class SchemaRequest:
    """A schema as a request carries it (register, lookup, compatibility test)."""

    schema: str
    schema_type: str | None = None
    references: Sequence[Any] | None = None
    extras: tuple[str, ...] = ()  # other request properties that would change the meaning

    def parse(self) -> avro.schema.Schema:
        """The request's Avro schema, or 42201 saying what is wrong or unsupported."""
        if self.schema_type is not None and str(self.schema_type).upper() != "AVRO":
            raise InvalidSchemaError(
                f"Unsupported schema type {self.schema_type!r}: this registry supports AVRO only"
            )
        if self.references:
            raise InvalidSchemaError(
                f"Schema references are not supported by this registry (got "
                f"{len(self.references)}); inline the referenced named types into the schema"
            )
        if self.extras:
            raise InvalidSchemaError(
                f"{' and '.join(self.extras)} not supported by this registry; send the schema "
                "without them"
            )
        return parse_schema(self.schema)


def parse_version(version: str | int) -> int | None:
    """A version as Confluent accepts it: 1..2^31-1, or ``latest`` / ``-1`` (returned as None)."""
    text = str(version).strip()
    if text.lower() == LATEST:
        return None
    try:
        number = int(text)
    except ValueError:
        raise InvalidVersionError(version) from None
    if number == -1:
        return None
    if not 1 <= number <= _MAX_VERSION:
        raise InvalidVersionError(version)
    return number


def parse_level(level: object) -> CompatibilityLevel:
    """One of the seven levels, in any letter case; anything else is 42203."""
    if not isinstance(level, str):
        raise InvalidCompatibilityLevelError(level)
    try:
        return CompatibilityLevel(level.strip().upper())
    except ValueError:
        raise InvalidCompatibilityLevelError(level) from None
