"""The registry core over an in-memory log: Confluent's semantics without HTTP or Kafka."""

from __future__ import annotations

import json

import pytest
from routeiq.contracts.compatibility import CompatibilityLevel, canonical_text, parse_schema
from routeiq.errors import SchemaParseError
from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry
from routeiq_schema_registry.core import records as rec
from routeiq_schema_registry.errors import (
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
    NotReadyError,
    SchemaNotFoundError,
    StoreError,
    StoreTimeoutError,
    SubjectCompatibilityNotConfiguredError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from unit.schema_registry.helpers import SlowStartLog, field, record, replayed, req

V1 = record("R", field("a"))
V2 = record("R", field("a"), field("b", "string", default="x"))
OTHER = record("Other", field("z", "string"))


# ---------------------------------------------------------------- register and read


def test_register_gives_ids_and_versions_in_order(registry: SchemaRegistry) -> None:
    first = registry.register("s", req(V1))
    second = registry.register("s", req(V2))
    assert (first.schema_id, first.version) == (1, 1)
    assert (second.schema_id, second.version) == (2, 2)
    assert registry.versions("s") == [1, 2]
    assert registry.version("s", "latest") == second
    assert registry.version("s", -1) == second
    assert registry.version("s", "1").schema == canonical_text(parse_schema(V1))


def test_the_same_schema_again_returns_the_existing_version(registry: SchemaRegistry) -> None:
    first = registry.register("s", req(V1))
    registry.register("s", req(V2))
    # Whitespace and attribute order do not make a new schema; an older live version matches.
    spaced = json.dumps(json.loads(V1), indent=4)
    assert registry.register("s", req(spaced)) == first
    assert registry.versions("s") == [1, 2]


def test_the_same_schema_in_another_subject_reuses_the_global_id(
    registry: SchemaRegistry,
) -> None:
    a = registry.register("a", req(V1))
    b = registry.register("b", req(V1))
    assert a.schema_id == b.schema_id
    assert (b.subject, b.version) == ("b", 1)
    assert [(sv.subject, sv.version) for sv in registry.versions_of_id(a.schema_id)] == [
        ("a", 1),
        ("b", 1),
    ]


def test_a_write_is_visible_to_the_next_read_and_is_in_the_log(
    registry: SchemaRegistry, log: InMemorySchemaLog
) -> None:
    registered = registry.register("s", req(V1))
    assert registry.schema_by_id(registered.schema_id) == registered.schema
    keys = [json.loads(r.key) for r in log.records()]
    assert keys[-1] == {"keytype": "SCHEMA", "subject": "s", "version": 1, "magic": 1}
    assert json.loads(log.records()[-1].value or b"") == {
        "subject": "s",
        "version": 1,
        "id": 1,
        "schema": registered.schema,
        "deleted": False,
    }


def test_lookup_finds_the_version_or_says_what_is_missing(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    found = registry.lookup("s", req(json.dumps(json.loads(V1), indent=2)))
    assert (found.subject, found.version, found.schema_id) == ("s", 1, 1)
    with pytest.raises(SchemaNotFoundError, match="Schema not found"):
        registry.lookup("s", req(V2))
    with pytest.raises(SubjectNotFoundError, match="Subject 'nope' not found"):
        registry.lookup("nope", req(V1))


def test_invalid_and_unsupported_schemas_are_refused(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaParseError, match="Invalid schema"):
        registry.register("s", req('{"type": "record", "name": "R"}'))
    with pytest.raises(InvalidSchemaError, match="PROTOBUF"):
        registry.register("s", req('syntax = "proto3";', schema_type="PROTOBUF"))
    with pytest.raises(InvalidSchemaError, match="references are not supported"):
        registry.register("s", req(V1, references=[{"name": "x", "subject": "y", "version": 1}]))
    with pytest.raises(InvalidSchemaError, match="ruleSet"):
        registry.register("s", req(V1, extras=("ruleSet",)))
    assert registry.subjects() == []


@pytest.mark.parametrize("bad", ["0", "-2", "abc", str(2**31), "1.5"])
def test_invalid_versions_are_42202(registry: SchemaRegistry, bad: str) -> None:
    registry.register("s", req(V1))
    with pytest.raises(InvalidVersionError) as caught:
        registry.version("s", bad)
    assert caught.value.error_code == 42202


def test_missing_versions_and_subjects(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    with pytest.raises(VersionNotFoundError, match="Version 7 not found"):
        registry.version("s", 7)
    with pytest.raises(SubjectNotFoundError):
        registry.versions("nope")
    with pytest.raises(SchemaNotFoundError, match="Schema 99 not found"):
        registry.schema_by_id(99)


def test_schema_text_normalization(registry: SchemaRegistry) -> None:
    b_then_a = '{"type": "record", "name": "R", "fields": [], "b": 1, "a": 2}'
    a_then_b = '{"type": "record", "name": "R", "fields": [], "a": 2, "b": 1}'
    first = registry.register("s", req(b_then_a))
    # Without normalization the order of custom properties makes another text ...
    with pytest.raises(SchemaNotFoundError):
        registry.lookup("s", req(a_then_b))
    # ... with it, both sides are normalized and match.
    assert registry.lookup("s", req(a_then_b), normalize=True) == first
    normalized = registry.register("t", req(b_then_a), normalize=True)
    assert normalized.schema == '{"type":"record","name":"R","fields":[],"a":2,"b":1}'
    assert registry.register("t", req(a_then_b), normalize=True) == normalized


# ---------------------------------------------------------------- deletes


def test_soft_delete_hides_versions_but_keeps_ids(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    registry.register("s", req(V2))
    assert registry.delete_version("s", "1") == 1
    assert registry.versions("s") == [2]
    assert registry.versions("s", deleted=True) == [1, 2]
    assert registry.versions("s", deleted_only=True) == [1]
    with pytest.raises(VersionNotFoundError):
        registry.version("s", 1)
    assert registry.version("s", 1, deleted=True).deleted
    assert registry.schema_by_id(1)  # old data written with id 1 must stay readable
    with pytest.raises(VersionSoftDeletedError) as caught:
        registry.delete_version("s", 1)
    assert caught.value.error_code == 40406


def test_soft_then_permanent_subject_delete(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    registry.register("s", req(V2))
    registry.set_compatibility("s", "FULL")
    with pytest.raises(SubjectNotSoftDeletedError) as caught:
        registry.delete_subject("s", permanent=True)
    assert caught.value.error_code == 40405
    assert registry.delete_subject("s") == [1, 2]
    assert registry.subjects() == []
    assert registry.subjects(deleted=True) == ["s"]
    assert registry.subjects(deleted_only=True) == ["s"]
    # As Confluent: the subject's own level goes with it.
    with pytest.raises(SubjectCompatibilityNotConfiguredError):
        registry.compatibility("s")
    with pytest.raises(SubjectSoftDeletedError) as soft:
        registry.delete_subject("s")
    assert soft.value.error_code == 40404
    assert registry.delete_subject("s", permanent=True) == [1, 2]
    assert registry.subjects(deleted=True) == []
    with pytest.raises(SchemaNotFoundError):
        registry.schema_by_id(1)
    with pytest.raises(SubjectNotFoundError):
        registry.delete_subject("s")


def test_permanent_version_delete_needs_a_soft_delete_first(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    registry.register("s", req(V2))
    with pytest.raises(VersionNotSoftDeletedError) as caught:
        registry.delete_version("s", 2, permanent=True)
    assert caught.value.error_code == 40407
    registry.delete_version("s", "latest")
    assert registry.delete_version("s", 2, permanent=True) == 2
    assert registry.versions("s", deleted=True) == [1]


def test_versions_are_never_reused_after_a_soft_delete(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    registry.delete_subject("s")
    again = registry.register("s", req(V1))
    # A new version number, the same id (identical schema).
    assert (again.version, again.schema_id) == (2, 1)
    assert registry.lookup("s", req(V1), deleted=True) == again


def test_ids_are_not_reused_after_a_permanent_delete(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    registry.register("t", req(OTHER))
    registry.delete_subject("t")
    registry.delete_subject("t", permanent=True)
    third = registry.register("u", req(V2))
    assert third.schema_id == 3


# ---------------------------------------------------------------- configuration


def test_levels_global_subject_and_default(log: InMemorySchemaLog) -> None:
    registry = SchemaRegistry(log=log, default_compatibility=CompatibilityLevel.FULL)
    registry.start(timeout_s=5)
    assert registry.compatibility() is CompatibilityLevel.FULL
    with pytest.raises(SubjectCompatibilityNotConfiguredError) as caught:
        registry.compatibility("s")
    assert caught.value.error_code == 40408
    assert registry.compatibility("s", default_to_global=True) is CompatibilityLevel.FULL
    for level in CompatibilityLevel:
        assert registry.set_compatibility("s", level.value.lower()) is level
        assert registry.compatibility("s") is level
    registry.set_compatibility(None, "NONE")
    assert registry.compatibility() is CompatibilityLevel.NONE
    assert registry.delete_compatibility(None) is CompatibilityLevel.NONE
    assert registry.compatibility() is CompatibilityLevel.FULL
    assert registry.delete_compatibility("s") is CompatibilityLevel.NONE
    with pytest.raises(SubjectNotFoundError):
        registry.delete_compatibility("s")


@pytest.mark.parametrize("bad", ["SIDEWAYS", "", None, 3])
def test_invalid_levels_are_42203(registry: SchemaRegistry, bad: object) -> None:
    with pytest.raises(InvalidCompatibilityLevelError) as caught:
        registry.set_compatibility("s", bad)
    assert caught.value.error_code == 42203


def test_setting_the_same_level_twice_writes_once(
    registry: SchemaRegistry, log: InMemorySchemaLog
) -> None:
    registry.set_compatibility("s", "FULL")
    before = len(log.records())
    registry.set_compatibility("s", "full")
    assert len(log.records()) == before


# ---------------------------------------------------------------- lifecycle and the log


def test_nothing_is_served_before_the_replay(log: InMemorySchemaLog) -> None:
    registry = SchemaRegistry(log=log)
    assert not registry.ready
    with pytest.raises(NotReadyError) as caught:
        registry.subjects()
    assert caught.value.http_status == 503
    registry.start(timeout_s=5)
    assert registry.ready
    assert registry.subjects() == []


def test_start_appends_a_noop_and_replays_up_to_it(log: InMemorySchemaLog) -> None:
    log.append(rec.schema_key("s", 1), rec.schema_value("s", 1, 7, '"string"', False))
    registry = replayed(log)
    assert [json.loads(r.key)["keytype"] for r in log.records()] == ["SCHEMA", "NOOP"]
    assert registry.version("s", 1).schema_id == 7
    # The next id continues after the largest one in the log.
    assert registry.register("t", req(V1)).schema_id == 8


def test_foreign_and_malformed_records_are_skipped(log: InMemorySchemaLog) -> None:
    log.append(b"not json", b"{}")
    log.append(b'{"keytype":"CLEAR_SUBJECT","subject":"s","magic":0}', b"{}")
    log.append(
        rec.schema_key("p", 1),
        b'{"subject":"p","version":1,"id":5,"schema":"x","deleted":false,"schemaType":"PROTOBUF"}',
    )
    log.append(rec.schema_key("s", 1), rec.schema_value("s", 1, 1, '"int"', False))
    registry = replayed(log)
    assert registry.subjects() == ["s"]
    # The PROTOBUF record is not served, but its id stays taken.
    assert registry.register("t", req(V1)).schema_id == 6


class _BrokenLog(InMemorySchemaLog):
    def append(self, key: bytes, value: bytes | None, *, timeout_s: float = 0.0) -> int:
        if json.loads(key)["keytype"] == "NOOP":
            return super().append(key, value)
        raise StoreError("broker said no")


class _LostWriteLog(InMemorySchemaLog):
    """Acknowledges a write but the record never shows up when read (a broken store)."""

    def append(self, key: bytes, value: bytes | None, *, timeout_s: float = 0.0) -> int:
        if json.loads(key)["keytype"] == "NOOP":
            return super().append(key, value)
        return self.end_offset() + 5


def test_store_failures_surface_as_store_errors() -> None:
    broken = SchemaRegistry(log=_BrokenLog())
    broken.start(timeout_s=5)
    with pytest.raises(StoreError, match="broker said no"):
        broken.register("s", req(V1))
    lost = SchemaRegistry(log=_LostWriteLog(), write_timeout_s=0.2)
    lost.start(timeout_s=5)
    with pytest.raises(StoreTimeoutError):
        lost.register("s", req(V1))


def test_start_retries_until_the_log_is_reachable_then_gives_up() -> None:
    naps: list[float] = []
    registry = SchemaRegistry(log=SlowStartLog(failures=2), sleep=naps.append)
    registry.start(timeout_s=30, retry_interval_s=0.01)
    assert registry.ready
    assert len(naps) == 2
    never = SchemaRegistry(log=SlowStartLog(failures=10**6), sleep=lambda _s: None)
    with pytest.raises(StoreError, match="connection refused"):
        never.start(timeout_s=0.05, retry_interval_s=0.01)
    assert not never.ready
