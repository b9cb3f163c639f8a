"""Records with float arrays are written with numpy packing the arrays: the bytes are exactly
fastavro's, and everything fastavro refuses is still refused."""

from __future__ import annotations

import io
import json

import fastavro
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.contracts import CONTRACTS
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.floatarrays import FloatArrayWriter
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.errors import SerializationError
from support.avro_strategies import records

# Named types defined before a float array and used after it; the other union order; a
# float array that is not nullable; arrays first and last.
MIXED = {
    "type": "record",
    "name": "Mixed",
    "namespace": "test",
    "fields": [
        {"name": "first", "type": {"type": "array", "items": "float"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {
            "name": "inner",
            "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "long"}]},
        },
        {"name": "vec", "type": ["null", {"type": "array", "items": "float"}], "default": None},
        {"name": "again", "type": "Kind"},
        {"name": "other", "type": [{"type": "array", "items": "float"}, "null"]},
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
        {"name": "last", "type": ["null", {"type": "array", "items": "float"}], "default": None},
    ],
}


def _fastavro(schema: dict, record: dict) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(
        buffer,
        fastavro.parse_schema(json.loads(json.dumps(schema))),
        record,
        strict_allow_default=True,
    )
    return buffer.getvalue()


def _ours(schema: dict, record: dict) -> bytes:
    writer = FloatArrayWriter.for_schema(schema)
    assert writer is not None
    buffer = io.BytesIO()
    writer.write(buffer, record)
    return buffer.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_bytes_are_fastavros(data) -> None:
    for schema in (MIXED, json.loads(ROUTER_DECISION.working_text())):
        record = data.draw(records(schema))
        assert _ours(schema, record) == _fastavro(schema, record)
        # numpy arrays (what the gateway holds) encode as the lists they equal.
        as_arrays = {
            k: np.asarray(v, dtype=np.float32)
            if isinstance(v, list) and v and isinstance(v[0], float)
            else v
            for k, v in record.items()
        }
        assert _ours(schema, as_arrays) == _fastavro(schema, record)


def test_a_missing_nullable_array_takes_its_default() -> None:
    record = {
        "first": [],
        "kind": "A",
        "inner": {"x": 1},
        "again": "B",
        "other": None,
        "inners": [],
    }
    assert _ours(MIXED, record) == _fastavro(MIXED, record)


def test_values_beyond_float32_and_non_floats_are_written_as_fastavro_writes_them() -> None:
    record = {
        "first": [1e39, -1e39, float("nan"), float("inf"), 1, np.float64(2.5)],
        "kind": "A",
        "inner": {"x": 1},
        "again": "B",
        "other": [1.5, 2],
        "inners": [],
    }
    assert _ours(MIXED, record) == _fastavro(MIXED, record)
    refused = {**record, "other": [1.5, True]}
    with pytest.raises(ValueError, match="do not match"):
        _fastavro(MIXED, refused)
    with pytest.raises(ValueError, match="do not match"):
        _ours(MIXED, refused)


@pytest.mark.parametrize(
    "change",
    [
        {"vec": ["a", "b"]},  # not numbers
        {"first": None},  # not nullable
        {"surprise": 1},  # an unknown field
        {"kind": "C"},  # not a symbol (a field fastavro writes)
    ],
    ids=["strings", "null-not-allowed", "unknown-field", "bad-enum"],
)
def test_what_fastavro_refuses_is_refused(change) -> None:
    record = {
        "first": [1.0],
        "kind": "A",
        "inner": {"x": 1},
        "vec": [0.5],
        "again": "B",
        "other": [2.0],
        "inners": [{"x": 2}],
        "last": None,
        **change,
    }
    with pytest.raises((ValueError, TypeError, KeyError, AttributeError, OverflowError)):
        _fastavro(MIXED, record)
    with pytest.raises((ValueError, TypeError, KeyError, AttributeError, OverflowError)):
        _ours(MIXED, record)


def test_a_missing_required_array_is_refused() -> None:
    record = {"kind": "A", "inner": {"x": 1}, "again": "B", "other": None, "inners": []}
    with pytest.raises((ValueError, TypeError, KeyError)):
        _ours(MIXED, record)


def test_the_serde_uses_it_only_where_a_contract_has_float_arrays() -> None:
    with_arrays = [
        c
        for c in CONTRACTS
        if FloatArrayWriter.for_schema(json.loads(c.working_text())) is not None
    ]
    assert [c.stem for c in with_arrays] == [ROUTER_DECISION.stem]
    serde = AvroSerde.for_contract(ROUTER_DECISION, subject="d-value", resolver=LocalResolver())
    with pytest.raises(SerializationError, match="cannot encode d-value record"):
        serde.encode({"event_id": "x", "query_embedding": ["not", "numbers"]})


def test_float64_arrays_are_written_as_the_floats_they_hold() -> None:
    base = {"first": [0.1], "kind": "A", "inner": {"x": 1}, "again": "B", "inners": []}
    values = [0.1, -2.5, 1e-8]
    ours = _ours(MIXED, {**base, "other": np.array(values, dtype=np.float64)})
    assert ours == _fastavro(MIXED, {**base, "other": values})
    # Beyond float32's range a float64 array goes to fastavro, which wants a list.
    with pytest.raises(ValueError, match="do not match"):
        _ours(MIXED, {**base, "other": np.array([1e39])})
