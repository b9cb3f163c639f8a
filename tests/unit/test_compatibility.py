"""Compatibility levels mapped onto Apache Avro's reader/writer checker."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.contracts.compatibility import (
    CompatibilityLevel,
    canonical_text,
    check_compatibility,
    parse_schema,
)
from routeiq.errors import SchemaParseError
from support.avro_strategies import record_schemas

L = CompatibilityLevel


def _parse(doc) -> object:
    return parse_schema(json.dumps(doc))


def _ok(new, old, level) -> bool:
    return not check_compatibility(_parse(new), [(1, _parse(old))], level)


@settings(max_examples=150, deadline=None)
@given(old=record_schemas(), new=record_schemas())
def test_forward_is_backward_with_roles_swapped(old, new) -> None:
    assert _ok(new, old, L.FORWARD) == _ok(old, new, L.BACKWARD)


@settings(max_examples=150, deadline=None)
@given(old=record_schemas(), new=record_schemas())
def test_full_is_backward_and_forward(old, new) -> None:
    assert _ok(new, old, L.FULL) == (_ok(new, old, L.BACKWARD) and _ok(new, old, L.FORWARD))


@settings(max_examples=150, deadline=None)
@given(old=record_schemas(), new=record_schemas())
def test_none_accepts_anything(old, new) -> None:
    assert _ok(new, old, L.NONE)


@settings(max_examples=100, deadline=None)
@given(old=record_schemas(), extra=st.sampled_from(["int", "string", "double"]))
def test_adding_an_optional_field_is_fully_compatible(old, extra) -> None:
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "zz_new", "type": ["null", extra], "default": None})
    assert _ok(new, old, L.FULL)


@settings(max_examples=100, deadline=None)
@given(old=record_schemas(), extra=st.sampled_from(["int", "string", "double"]))
def test_adding_a_required_field_breaks_backward(old, extra) -> None:
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "zz_new", "type": extra})
    assert not _ok(new, old, L.BACKWARD)
    assert _ok(new, old, L.FORWARD)  # old readers just ignore the new field


@settings(max_examples=100, deadline=None)
@given(schema=record_schemas())
def test_every_schema_is_fully_compatible_with_itself(schema) -> None:
    for level in L:
        assert _ok(schema, schema, level)


def _rec(*fields) -> dict:
    return {"type": "record", "name": "R", "fields": list(fields)}


V1 = _rec({"name": "a", "type": "int"})
V2 = _rec({"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0})
V3 = _rec({"name": "a", "type": "int"}, {"name": "b", "type": "int"})


def test_transitive_levels_check_every_earlier_version() -> None:
    history = [(1, _parse(V1)), (2, _parse(V2))]
    # V3 reads V2 data (b present) but not V1 data (b missing, no default).
    assert check_compatibility(_parse(V3), history, L.BACKWARD) == []
    problems = check_compatibility(_parse(V3), history, L.BACKWARD_TRANSITIVE)
    assert [p.against_version for p in problems] == [1]
    assert "reader_field_missing_default_value" in problems[0].kinds
    assert "version 1" in problems[0].explain()
    assert "b" in problems[0].explain()


def test_type_change_is_explained_with_its_location() -> None:
    new = _rec({"name": "a", "type": "string"})
    (problem,) = check_compatibility(_parse(new), [(4, _parse(V1))], L.BACKWARD)
    text = problem.explain()
    assert "version 4" in text
    assert "/fields/0/type" in text
    assert "string" in text


@pytest.mark.parametrize(
    "text",
    ['{"type": "record"}', "not json", '{"type": "nosuchtype"}', '{"type": "enum", "name": "E"}'],
)
def test_invalid_schemas_raise_parse_errors_with_the_parser_message(text) -> None:
    with pytest.raises(SchemaParseError, match="Invalid schema"):
        parse_schema(text)


def test_canonical_text_ignores_whitespace_and_is_stable() -> None:
    compact = json.dumps(V2, separators=(",", ":"))
    spaced = json.dumps(V2, indent=4)
    assert canonical_text(parse_schema(compact)) == canonical_text(parse_schema(spaced))
