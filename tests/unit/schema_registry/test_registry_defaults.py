"""Field defaults are checked against their types when a schema is registered or tested (42201),
as Confluent does (Avro's validateDefaults), and not when a stored schema is looked up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from routeiq.contracts.compatibility import parse_schema
from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry
from routeiq_schema_registry.core import records as rec
from routeiq_schema_registry.core.defaults import first_invalid_default, fits
from routeiq_schema_registry.errors import InvalidSchemaError
from unit.schema_registry.helpers import field, record, req

if TYPE_CHECKING:
    from starlette.testclient import TestClient

ENUM = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
FIXED = {"type": "fixed", "name": "F", "size": 2}
INNER = {"type": "record", "name": "In", "fields": [{"name": "x", "type": "int"}]}
INNER_WITH_DEFAULT = {
    "type": "record",
    "name": "In",
    "fields": [{"name": "x", "type": "int", "default": 3}],
}

# (field type, default, valid?) for every primitive, the complex types and logical types.
CASES: list[tuple[Any, Any, bool]] = [
    ("null", None, True),
    ("null", 0, False),
    ("boolean", False, True),
    ("boolean", 0, False),
    ("boolean", "true", False),
    ("int", 7, True),
    ("int", -(2**31), True),
    ("int", "str", False),
    ("int", 1.5, False),
    ("int", 2**31, False),
    ("int", True, False),
    ("int", None, False),
    ("long", 2**40, True),
    ("long", 2**63, False),
    ("long", 1.0, False),
    ("float", 1.5, True),
    ("float", 1, True),
    ("float", "NaN", False),
    ("double", -2.5e300, True),
    ("double", "x", False),
    ("bytes", "\u00ff\u0000", True),
    ("bytes", 5, False),
    ("string", "", True),
    ("string", 5, False),
    ("string", None, False),
    (["null", "string"], None, True),
    (["null", "string"], "x", False),  # must fit the FIRST branch
    (["string", "null"], "x", True),
    (["string", "null"], None, False),
    ({"type": "array", "items": "int"}, [1, 2], True),
    ({"type": "array", "items": "int"}, [], True),
    ({"type": "array", "items": "int"}, [1, "a"], False),
    ({"type": "array", "items": "int"}, 1, False),
    ({"type": "map", "values": "long"}, {"a": 1}, True),
    ({"type": "map", "values": "long"}, {"a": "x"}, False),
    ({"type": "map", "values": "long"}, [], False),
    (ENUM, "A", True),
    (ENUM, 1, False),
    (FIXED, "ab", True),
    (FIXED, 2, False),
    (INNER, {"x": 1}, True),
    (INNER, {"x": "a"}, False),
    (INNER, {}, False),  # x has no default of its own
    (INNER, [1], False),
    (INNER_WITH_DEFAULT, {}, True),
    ({"type": "int", "logicalType": "date"}, 19000, True),
    ({"type": "int", "logicalType": "date"}, "2024-01-01", False),
    ({"type": "long", "logicalType": "timestamp-millis"}, 1_700_000_000_000, True),
    ({"type": "long", "logicalType": "timestamp-millis"}, 1.5, False),
    ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}, "\u0001", True),
    ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}, 1, False),
    ({"type": "string", "logicalType": "uuid"}, "0000", True),
    ({"type": "string", "logicalType": "uuid"}, 0, False),
]


def _with_default(type_: Any, default: Any) -> str:
    return record("R", field("a", type_, default=default))


@pytest.mark.parametrize(("type_", "default", "valid"), CASES)
def test_defaults_are_checked_against_their_type(type_: Any, default: Any, valid: bool) -> None:
    schema = parse_schema(_with_default(type_, default))
    problem = first_invalid_default(schema)
    assert (problem is None) is valid, problem
    if not valid:
        assert problem is not None
        assert "field a of R" in problem


@pytest.mark.parametrize(("type_", "default", "valid"), CASES)
def test_registration_refuses_an_invalid_default_with_42201(
    registry: SchemaRegistry, type_: Any, default: Any, valid: bool
) -> None:
    text = _with_default(type_, default)
    if valid:
        assert registry.register("s", req(text)).version == 1
        return
    with pytest.raises(InvalidSchemaError) as caught:
        registry.register("s", req(text))
    assert caught.value.error_code == 42201
    assert caught.value.http_status == 422
    assert "Invalid default for field a" in str(caught.value)
    assert registry.subjects() == []


def test_defaults_deep_inside_the_schema_are_checked() -> None:
    nested = {
        "type": "record",
        "name": "Outer",
        "fields": [
            {
                "name": "items",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Item",
                        "fields": [{"name": "n", "type": "int", "default": "one"}],
                    },
                },
            }
        ],
    }
    problem = first_invalid_default(parse_schema(json.dumps(nested)))
    assert problem is not None
    assert "field n of Item" in problem
    assert "'one' is not a int" in problem


def test_recursive_and_named_types_are_walked_once() -> None:
    linked = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "next", "type": ["null", "Node"], "default": None},
            {"name": "kind", "type": ENUM, "default": "A"},
            {"name": "again", "type": "E", "default": "B"},
        ],
    }
    assert first_invalid_default(parse_schema(json.dumps(linked))) is None
    linked["fields"][2]["default"] = 2  # type: ignore[index]
    assert "field again of Node" in (first_invalid_default(parse_schema(json.dumps(linked))) or "")


def test_a_huge_default_is_cut_in_the_message() -> None:
    problem = first_invalid_default(parse_schema(_with_default("int", "x" * 50_000)))
    assert problem is not None
    assert len(problem) < 400


def test_fits_follows_the_first_union_branch_only() -> None:
    union = parse_schema('["int", "string"]')
    assert fits(union, 1)
    assert not fits(union, "a")


def test_the_compatibility_test_checks_defaults_too(registry: SchemaRegistry) -> None:
    registry.register("s", req(record("R", field("a"))))
    with pytest.raises(InvalidSchemaError):
        registry.test_compatibility("s", req(_with_default("int", "str")), "latest")


def test_a_stored_schema_with_a_bad_default_is_still_found_by_lookup(
    log: InMemorySchemaLog,
) -> None:
    # Registered before defaults were checked (or by another registry): it stays readable.
    bad = parse_schema(_with_default("int", "str"))
    text = json.dumps(bad.to_json(), separators=(",", ":"))
    log.append(rec.schema_key("s", 1), rec.schema_value("s", 1, 4, text, False))
    registry = SchemaRegistry(log=log)
    registry.start(timeout_s=5)
    assert registry.lookup("s", req(_with_default("int", "str"))).schema_id == 4


def test_the_api_answers_422_42201(client: TestClient) -> None:
    response = client.post("/subjects/s/versions", json={"schema": _with_default("int", "str")})
    assert response.status_code == 422
    assert response.json()["error_code"] == 42201
    assert "Invalid default for field a" in response.json()["message"]
    check = client.post(
        "/compatibility/subjects/s/versions", json={"schema": _with_default("long", 1.5)}
    )
    assert (check.status_code, check.json()["error_code"]) == (422, 42201)
