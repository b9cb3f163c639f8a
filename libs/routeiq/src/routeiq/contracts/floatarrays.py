"""Avro encoding of a record whose top-level float arrays are packed by numpy.

fastavro writes an ``array<float>`` one Python float at a time: for a ``RouterDecision`` with
its 768-d feature vector that is about 125 µs of the gateway's per-request CPU (the rest of
the record about 40 µs). Avro's binary encoding of a record is the concatenation of its
fields' encodings, so the record can be written in segments: fastavro writes the runs of other
fields (each as a record schema of just those fields, with every named type in scope), and
the float arrays are written here as the specification lays them out: the union branch
index, one block (a zig-zag varint count, then the items as 4-byte little-endian IEEE 754
floats), and the zero count that ends the array. The bytes are identical to fastavro's (a
property test checks it). This path takes lists of Python floats and 1-d numpy float arrays
(the gateway's vectors, which fastavro itself would want as lists); anything else (ints,
bools, values beyond float32's range, unknown fields) goes to fastavro whole, so what it
accepts and refuses is unchanged.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
import numpy as np

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _zigzag(n: int) -> bytes:
    """An Avro ``long``: zig-zag, then base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _float_array_branches(field_type: Any) -> tuple[int | None, int | None] | None:
    """(null branch, array branch) of a field typed ``array<float>`` (no union: both None
    but the array) or a union of null and ``array<float>``; None for any other type."""

    def is_float_array(t: Any) -> bool:
        return isinstance(t, dict) and t.get("type") == "array" and t.get("items") == "float"

    if is_float_array(field_type):
        return (None, None)
    if isinstance(field_type, list) and len(field_type) == 2 and "null" in field_type:
        other = 1 - field_type.index("null")
        if is_float_array(field_type[other]):
            return (field_type.index("null"), other)
    return None


@dataclass(frozen=True)
class _Segment:
    names: frozenset[str]
    schema: Any  # a parsed record schema of just these fields


@dataclass(frozen=True)
class _FloatField:
    name: str
    null_branch: int | None
    array_branch: int | None
    has_default: bool
    default: Any


class FloatArrayWriter:
    """Writes records of one schema with their top-level float arrays packed by numpy."""

    def __init__(self, schema: Any, parts: list[_Segment | _FloatField]) -> None:
        self._schema = schema  # the whole parsed schema: fastavro writes what we do not
        self._parts = parts
        self._fields = frozenset(
            n for p in parts for n in (p.names if isinstance(p, _Segment) else {p.name})
        )

    @classmethod
    def for_schema(cls, raw: Mapping[str, Any]) -> FloatArrayWriter | None:
        """A writer for the record schema ``raw`` (its JSON), or None without float arrays."""
        if raw.get("type") != "record":
            return None
        fields = raw["fields"]
        floats = {
            f["name"]: branches
            for f in fields
            if (branches := _float_array_branches(f["type"])) is not None
        }
        if not floats:
            return None
        named: dict[str, Any] = {}
        whole = fastavro.parse_schema(copy.deepcopy(dict(raw)), named_schemas=named)
        parts: list[_Segment | _FloatField] = []
        run: list[dict[str, Any]] = []

        def close_run() -> None:
            if not run:
                return
            segment = {
                "type": "record",
                "name": f"{raw['name']}_routeiq_segment{len(parts)}",
                "namespace": raw.get("namespace", ""),
                "fields": copy.deepcopy(run),
            }
            # Named types defined in earlier fields stay in scope for this segment's fields.
            parsed = fastavro.parse_schema(segment, named_schemas=dict(named))
            parts.append(_Segment(frozenset(f["name"] for f in run), parsed))
            run.clear()

        for f in fields:
            if f["name"] in floats:
                close_run()
                null_branch, array_branch = floats[f["name"]]
                parts.append(
                    _FloatField(
                        f["name"], null_branch, array_branch, "default" in f, f.get("default")
                    )
                )
            else:
                run.append(f)
        close_run()
        return cls(whole, parts)

    def write(self, buffer: io.BytesIO, record: Mapping[str, Any]) -> None:
        """Write ``record``'s Avro body; raises what fastavro's strict writer raises."""
        extra = set(record) - self._fields
        packed: dict[str, bytes] = {}
        arrays = False
        for part in self._parts:
            if isinstance(part, _FloatField):
                encoded = self._pack(part, record)
                if encoded is None:
                    extra.add(part.name)  # not ours to write: fastavro writes it, or refuses
                    break
                packed[part.name] = encoded
                arrays = arrays or record.get(part.name) is not None
        if extra or not arrays:
            # Unknown fields, a value only fastavro can judge (it writes or refuses), or no
            # array to pack (one fastavro call is then cheaper than the segments).
            fastavro.schemaless_writer(buffer, self._schema, record, strict_allow_default=True)
            return
        for part in self._parts:
            if isinstance(part, _FloatField):
                buffer.write(packed[part.name])
            else:
                fastavro.schemaless_writer(
                    buffer,
                    part.schema,
                    {k: v for k, v in record.items() if k in part.names},
                    strict_allow_default=True,
                )

    def _pack(self, field: _FloatField, record: Mapping[str, Any]) -> bytes | None:
        if field.name in record:
            value = record[field.name]
        elif field.has_default:
            value = field.default
        else:
            return None
        if value is None:
            if field.null_branch is None:
                return None
            return _zigzag(field.null_branch)
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype == np.float32:
            items = value  # the gateway's vectors: already what Avro writes
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "f":
            items = value.astype(np.float64, copy=False)
        elif isinstance(value, list | tuple) and all(type(x) is float for x in value):
            items = np.asarray(value, dtype=np.float64)
        else:
            return None  # ints, bools, numpy scalars...: fastavro's rules decide
        if items.dtype != np.float32 and np.any(np.abs(items[np.isfinite(items)]) > _FLOAT32_MAX):
            return None
        head = b"" if field.array_branch is None else _zigzag(field.array_branch)
        if items.size == 0:
            return head + b"\x00"
        body = items.astype("<f4", copy=False).tobytes()
        return head + _zigzag(int(items.size)) + body + b"\x00"
