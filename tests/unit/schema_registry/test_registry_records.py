"""The ``_schemas`` record format: Confluent's JSON keys and values, byte for byte."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq_schema_registry.core import records as rec


def test_keys_are_confluents_json_in_a_fixed_field_order() -> None:
    assert rec.schema_key("orders-value", 3) == (
        b'{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}'
    )
    assert rec.config_key(None) == b'{"keytype":"CONFIG","subject":null,"magic":0}'
    assert rec.config_key("s") == b'{"keytype":"CONFIG","subject":"s","magic":0}'
    assert rec.delete_subject_key("s") == b'{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}'
    assert rec.NOOP_KEY == b'{"keytype":"NOOP","magic":0}'


def test_values() -> None:
    assert json.loads(rec.schema_value("s", 1, 7, '"int"', False)) == {
        "subject": "s",
        "version": 1,
        "id": 7,
        "schema": '"int"',
        "deleted": False,
    }
    assert json.loads(rec.config_value(CompatibilityLevel.FULL)) == {"compatibilityLevel": "FULL"}
    assert json.loads(rec.delete_subject_value("s", 4)) == {"subject": "s", "version": 4}


@given(
    subject=st.text(min_size=1, max_size=20),
    version=st.integers(1, 2**31 - 1),
    schema_id=st.integers(0, 2**31 - 1),
    deleted=st.booleans(),
)
def test_schema_records_decode_to_what_was_encoded(
    subject: str, version: int, schema_id: int, deleted: bool
) -> None:
    key = rec.schema_key(subject, version)
    decoded = rec.decode(key, rec.schema_value(subject, version, schema_id, '"long"', deleted))
    assert decoded == rec.SchemaRecord(
        subject, version, rec.SchemaValue(schema_id, '"long"', deleted)
    )
    assert rec.decode(key, None) == rec.SchemaRecord(subject, version, None)
    # The same logical key is always the same bytes (compaction relies on it).
    assert rec.schema_key(subject, version) == key


def test_config_delete_subject_and_noop_decode() -> None:
    level = rec.config_value(CompatibilityLevel.NONE)
    assert rec.decode(rec.config_key(None), level) == rec.ConfigRecord(
        None, CompatibilityLevel.NONE
    )
    assert rec.decode(rec.config_key("s"), None) == rec.ConfigRecord("s", None)
    assert rec.decode(
        rec.delete_subject_key("s"), rec.delete_subject_value("s", 2)
    ) == rec.DeleteSubjectRecord("s", 2)
    assert rec.decode(rec.NOOP_KEY, None) == rec.NoopRecord()


def test_foreign_or_broken_records_are_unknown_with_a_reason() -> None:
    cases = [
        (b"\x00garbage", b"{}"),
        (b"[1]", None),
        (b'{"keytype":"MODE","subject":null,"magic":0}', b'{"mode":"READONLY_OVERRIDE"}'),
        (b'{"keytype":"CLEAR_SUBJECT","subject":"s","magic":0}', b"{}"),
        (b'{"keytype":"SCHEMA","subject":"s","magic":1}', b"{}"),
        (b"[" * 100_000, None),
        (rec.schema_key("s", 1), b'{"subject":"s","version":1}'),
        (rec.config_key(None), b'{"compatibilityLevel":"SIDEWAYS"}'),
        (rec.schema_key("s", 1), b'"a string"'),
    ]
    for key, value in cases:
        decoded = rec.decode(key, value)
        assert isinstance(decoded, rec.Unknown), (key, value)
        assert decoded.reason
