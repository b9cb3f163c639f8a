"""Schema parsing and compatibility rules, shared by the registry service and the CLI.

The decision itself is Apache Avro's ``ReaderWriterCompatibilityChecker``; this module only maps
Confluent's seven compatibility levels onto reader/writer pairs and explains failures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import avro.compatibility
import avro.errors
import avro.schema

from routeiq.errors import SchemaParseError


class CompatibilityLevel(StrEnum):
    """Confluent Schema Registry compatibility levels."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def checks_backward(self) -> bool:
        """New schema must read data written with earlier ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def checks_forward(self) -> bool:
        """Earlier schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


def parse_schema(text: str) -> avro.schema.Schema:
    """Parse Avro schema JSON text; ``SchemaParseError`` carries the parser's message."""
    try:
        return avro.schema.parse(text)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise SchemaParseError(f"Invalid schema: {exc}") from exc


def canonical_text(schema: avro.schema.Schema) -> str:
    """Compact, deterministic JSON of a parsed schema (docs and defaults kept).

    Two texts that parse to the same schema give the same canonical text, which is how the
    registry decides that a registration is "the same schema" and reuses its id.
    """
    return json.dumps(schema.to_json(), separators=(",", ":"), sort_keys=False)


@dataclass(frozen=True)
class Incompatibility:
    """Why ``new`` cannot replace one earlier version under a level."""

    direction: str  # "backward" (new reads old) or "forward" (old reads new)
    against_version: int | None
    kinds: tuple[str, ...]
    messages: tuple[str, ...]
    locations: tuple[str, ...]

    def explain(self) -> str:
        who = f"version {self.against_version}" if self.against_version is not None else "it"
        if self.direction == "backward":
            head = f"the new schema cannot read data written with {who}"
        else:
            head = f"{who} cannot read data written with the new schema"
        detail = "; ".join(self.messages) or "incompatible"
        where = ", ".join(self.locations)
        return f"{head}: {', '.join(self.kinds)} ({detail}) at {where}"


def check_pair(
    reader: avro.schema.Schema, writer: avro.schema.Schema
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
    """Return (kinds, messages, locations) when ``reader`` cannot read ``writer``'s data."""
    checker = avro.compatibility.ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is avro.compatibility.SchemaCompatibilityType.compatible:
        return None
    return (
        tuple(kind.value for kind in result.incompatibilities),
        tuple(sorted(str(m) for m in result.messages)),
        tuple(sorted(str(loc) for loc in result.locations)),
    )


def check_compatibility(
    new: avro.schema.Schema,
    existing: Sequence[tuple[int | None, avro.schema.Schema]],
    level: CompatibilityLevel,
) -> list[Incompatibility]:
    """Check ``new`` against ``existing`` (oldest first) under ``level``.

    Non-transitive levels compare with the latest version only; transitive ones with all.
    Returns every incompatibility found (empty when compatible).
    """
    if level is CompatibilityLevel.NONE or not existing:
        return []
    targets = existing if level.transitive else existing[-1:]
    problems: list[Incompatibility] = []
    for version, old in targets:
        if level.checks_backward:
            found = check_pair(new, old)
            if found:
                problems.append(Incompatibility("backward", version, *found))
        if level.checks_forward:
            found = check_pair(old, new)
            if found:
                problems.append(Incompatibility("forward", version, *found))
    return problems
