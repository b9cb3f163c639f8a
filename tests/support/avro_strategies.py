"""Hypothesis strategies derived from Avro schemas: any valid record of a given schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _millis(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def records(schema: Any, names: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """A strategy for values of ``schema`` (parsed JSON, as in an .avsc file).

    Values are generated so that a round trip through Avro is exact: floats are float32 when
    the type is float, timestamps are UTC datetimes at millisecond precision, no NaN.
    """
    names = {} if names is None else names
    if isinstance(schema, str):
        if schema in names:
            return records(names[schema], names)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(*_INT32),
            "long": st.integers(*_INT64),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "string": st.text(),
            "bytes": st.binary(max_size=64),
        }[schema]
    if isinstance(schema, list):
        return st.one_of([records(branch, names) for branch in schema])
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-millis":
        return st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        ).map(_millis)
    if kind == "record":
        # Later references may use the short or the full name.
        names[schema["name"]] = schema
        names[schema["name"].rsplit(".", 1)[-1]] = schema
        return st.fixed_dictionaries(
            {f["name"]: records(f["type"], names) for f in schema["fields"]}
        )
    if kind == "enum":
        names[schema["name"]] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(records(schema["items"], names), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), records(schema["values"], names), max_size=4)
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    return records(kind, names)


_FIELD_TYPES = ["int", "long", "string", "double", "boolean", "bytes"]


@st.composite
def record_schemas(draw: st.DrawFn, name: str = "R") -> dict[str, Any]:
    """Small random record schemas (distinct field names, primitive or nullable types)."""
    field_names = draw(st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=6, unique=True))
    fields = []
    for field_name in field_names:
        base = draw(st.sampled_from(_FIELD_TYPES))
        if draw(st.booleans()):
            fields.append({"name": field_name, "type": ["null", base], "default": None})
        else:
            fields.append({"name": field_name, "type": base})
    return {"type": "record", "name": name, "fields": fields}
