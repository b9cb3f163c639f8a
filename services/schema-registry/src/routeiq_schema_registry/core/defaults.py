"""Field defaults checked against their field's type, as Confluent does when it registers.

Confluent parses a new schema with Avro's ``validateDefaults`` on, so ``{"type": "int",
"default": "str"}`` is refused (42201) before it can reach a reader that would fail on it.
Apache Avro's Python parser (ours) does not check defaults, and fastavro's ``parse_schema``
checks only the outer JSON type (array items, map values, record fields and union branches
pass unchecked), so the rules are written here, after Java Avro's ``Schema.isValidDefault``:

* ``null`` / ``boolean``: JSON null / true-false; ``int`` / ``long``: an integral JSON number
  in the 32 / 64-bit range; ``float`` / ``double``: any JSON number;
* ``string``, ``bytes``, ``enum``, ``fixed``: a JSON string (Java does not check the enum's
  symbols or the fixed size either); logical types: their underlying type's rule;
* ``array`` / ``map``: a JSON array / object whose every item follows the items / values rule;
* ``record``: a JSON object giving each field a valid value, or leaving it to the field's own
  default;
* a union: the value must fit its FIRST branch (the Avro specification's rule; readers decode a
  union default with the first branch). Newer Java Avro releases accept any branch.
"""

from __future__ import annotations

from typing import Any

import avro.schema

from routeiq_schema_registry.errors import InvalidSchemaError

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_TEXTUAL = frozenset({"string", "bytes", "enum", "fixed"})
# Shown in an error message: enough to recognise the default, never a whole document.
_SHOWN = 200


def check_defaults(schema: avro.schema.Schema) -> None:
    """Raise 42201 naming the first field whose default does not fit its type."""
    problem = first_invalid_default(schema)
    if problem is not None:
        raise InvalidSchemaError(f"Invalid schema: {problem}")


def first_invalid_default(schema: avro.schema.Schema) -> str | None:
    """Why the first invalid field default in ``schema`` is invalid (None: all are valid)."""
    seen: set[int] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, avro.schema.RecordSchema):
            for field in node.fields:
                if field.has_default and not fits(field.type, field.default):
                    shown = repr(field.default)
                    if len(shown) > _SHOWN:
                        shown = shown[:_SHOWN] + "..."
                    return (
                        f"Invalid default for field {field.name} of {node.fullname}: {shown} "
                        f"is not a {_describe(field.type)}"
                    )
            stack.extend(reversed([field.type for field in node.fields]))
        else:
            stack.extend(_children(node))
    return None


def fits(schema: avro.schema.Schema, value: Any) -> bool:
    """Whether the JSON ``value`` is a valid default for ``schema`` (rules in the docstring)."""
    kind = schema.type
    if isinstance(schema, avro.schema.UnionSchema):
        return bool(schema.schemas) and fits(schema.schemas[0], value)
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in _TEXTUAL:
        return isinstance(value, str)
    if isinstance(schema, avro.schema.ArraySchema):
        return isinstance(value, list) and all(fits(schema.items, item) for item in value)
    if isinstance(schema, avro.schema.MapSchema):
        return isinstance(value, dict) and all(fits(schema.values, v) for v in value.values())
    if isinstance(schema, avro.schema.RecordSchema):
        return isinstance(value, dict) and all(_field_fits(field, value) for field in schema.fields)
    return False


def _field_fits(field: avro.schema.Field, record: dict[str, Any]) -> bool:
    if field.name in record:
        return fits(field.type, record[field.name])
    # A field the default leaves out takes its own default; without one the value is incomplete.
    return field.has_default and fits(field.type, field.default)


def _children(schema: avro.schema.Schema) -> list[avro.schema.Schema]:
    if isinstance(schema, avro.schema.UnionSchema):
        return list(schema.schemas)
    if isinstance(schema, avro.schema.ArraySchema):
        return [schema.items]
    if isinstance(schema, avro.schema.MapSchema):
        return [schema.values]
    return []


def _describe(schema: avro.schema.Schema) -> str:
    if isinstance(schema, avro.schema.UnionSchema):
        first = schema.schemas[0] if schema.schemas else None
        return "union whose first branch is " + (_describe(first) if first else "missing")
    if isinstance(schema, avro.schema.NamedSchema):
        return f"{schema.type} {schema.fullname}"
    return str(schema.type)
