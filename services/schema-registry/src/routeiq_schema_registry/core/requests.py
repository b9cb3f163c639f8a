"""What a request asks of the registry, checked before any state is read.

A schema as a request carries it (``SchemaRequest``), a version (``parse_version``), a
compatibility level (``parse_level``) and a mode (``parse_mode``) are validated here, with
Confluent's error codes, so that the operations in ``core.registry`` start from values they
can trust.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import avro.schema
from routeiq.contracts.compatibility import CompatibilityLevel, parse_schema

from routeiq_schema_registry.core.defaults import check_defaults
from routeiq_schema_registry.core.modes import Mode
from routeiq_schema_registry.errors import (
    InvalidCompatibilityLevelError,
    InvalidModeError,
    InvalidSchemaError,
    InvalidVersionError,
)

E = TypeVar("E", bound=StrEnum)

LATEST = "latest"
_MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class SchemaRequest:
    """A schema as a request carries it (register, lookup, compatibility test)."""

    schema: str
    schema_type: str | None = None
    references: Sequence[Any] | None = None
    extras: tuple[str, ...] = ()  # other request properties that would change the meaning
    # IMPORT mode only: the id (and version) the schema had in the registry it comes from.
    schema_id: int | None = None
    version: int | None = None

    def parse(self, *, new: bool = True) -> avro.schema.Schema:
        """The request's Avro schema, or 42201 saying what is wrong or unsupported.

        ``new`` (a schema to register or to test): its field defaults must also fit their
        types, as Confluent checks for new schemas; a lookup passes ``new=False``.
        """
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
        schema = parse_schema(self.schema)
        if new:
            check_defaults(schema)
        return schema


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
    return _choice(level, CompatibilityLevel, InvalidCompatibilityLevelError)


def parse_mode(mode: object) -> Mode:
    """READWRITE, READONLY or IMPORT, in any letter case; anything else is 42204."""
    return _choice(mode, Mode, InvalidModeError)


def _choice(value: object, kind: type[E], error: Callable[[object], Exception]) -> E:
    if not isinstance(value, str):
        raise error(value)
    try:
        return kind(value.strip().upper())
    except ValueError:
        raise error(value) from None
