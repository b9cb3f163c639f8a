"""How a registered schema's text is stored and compared.

* Default: ``canonical_text`` of the parsed schema (shared with the CLI): compact JSON, names
  fully qualified, docs, defaults, aliases, logical types and custom properties kept. Two
  registrations that differ only in whitespace, in the order of Avro's own attributes, or in
  how names are written (short in a namespace vs. full) get the same text, hence the same id.
* ``normalize=true``: additionally every JSON object's keys are put in one fixed order (Avro's
  attributes in Parsing Canonical Form order, then any other property alphabetically), so that
  schemas differing only in the order of their custom properties (which ``canonical_text``
  keeps as written) also match. We do not use
  Avro's Parsing Canonical Form itself: it drops docs, defaults and aliases, and the stored text
  must stay a complete schema that readers (and schema resolution defaults) can rely on.

A normalized registration stores the normalized text; a lookup with ``normalize=true``
compares normalized forms on both sides, one without compares stored texts as they are.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import avro.schema
from routeiq.contracts.compatibility import canonical_text, parse_schema

# Parsing Canonical Form's attribute order, then the other attributes Avro defines.
_ORDER = {
    name: rank
    for rank, name in enumerate(
        (
            "type",
            "name",
            "namespace",
            "fields",
            "symbols",
            "items",
            "values",
            "size",
            "doc",
            "aliases",
            "default",
            "order",
            "logicalType",
            "precision",
            "scale",
        )
    )
}


def stored_text(schema: avro.schema.Schema, *, normalize: bool) -> str:
    """The text the registry stores (and compares) for a parsed schema."""
    return normalized_text(schema) if normalize else canonical_text(schema)


def normalized_text(schema: avro.schema.Schema) -> str:
    """``canonical_text`` with every object's keys in one fixed order (see module docstring)."""
    return json.dumps(_ordered(schema.to_json()), separators=(",", ":"))


def _ordered(node: Any) -> Any:
    if isinstance(node, dict):
        keys = sorted(node, key=lambda k: (_ORDER.get(k, len(_ORDER)), k))
        return {k: _ordered(node[k]) for k in keys}
    if isinstance(node, list):
        return [_ordered(item) for item in node]
    return node


@lru_cache(maxsize=4096)
def parsed(text: str) -> avro.schema.Schema:
    """Parse a stored text (cached: stored texts are parsed again for every check)."""
    return parse_schema(text)


@lru_cache(maxsize=4096)
def normalized_of(text: str) -> str:
    """The normalized form of a stored text."""
    return normalized_text(parsed(text))


def same_schema(text: str, stored: str, *, normalize: bool) -> bool:
    """Whether a request's stored form matches a stored schema (normalized on both sides if
    asked)."""
    if text == stored:
        return True
    return normalize and normalized_of(stored) == text
