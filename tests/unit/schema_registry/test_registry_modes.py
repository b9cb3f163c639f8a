"""Modes (READWRITE, READONLY, IMPORT), global and per subject, with Confluent's rules; kept in
the log as MODE records, so a replayed registry agrees."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry
from routeiq_schema_registry.core import records as rec
from routeiq_schema_registry.core.modes import Mode
from routeiq_schema_registry.errors import (
    InvalidModeError,
    InvalidSchemaError,
    OperationNotPermittedError,
    SubjectModeNotConfiguredError,
    SubjectNotFoundError,
)
from unit.schema_registry.helpers import field, record, replayed, req

if TYPE_CHECKING:
    from starlette.testclient import TestClient

V1 = record("R", field("a"))
V2 = record("R", field("a"), field("b", "string", default="x"))
# Incompatible with V1 under BACKWARD: an import does not check compatibility.
BREAKS = record("R", field("a", "string"))


def _refused(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(OperationNotPermittedError) as caught:
        call()
    assert (caught.value.http_status, caught.value.error_code) == (422, 42205)
    assert message in str(caught.value)


def test_modes_global_and_per_subject(registry: SchemaRegistry, log: InMemorySchemaLog) -> None:
    assert registry.mode() is Mode.READWRITE
    with pytest.raises(SubjectModeNotConfiguredError) as caught:
        registry.mode("s")
    assert (caught.value.http_status, caught.value.error_code) == (404, 40409)
    assert registry.mode("s", default_to_global=True) is Mode.READWRITE
    assert registry.set_mode(None, "readonly") is Mode.READONLY
    assert registry.mode("s", default_to_global=True) is Mode.READONLY
    assert registry.set_mode("s", "READWRITE") is Mode.READWRITE
    assert registry.mode("s") is Mode.READWRITE
    before = len(log.records())
    registry.set_mode("s", "READWRITE")  # unchanged: nothing written
    assert len(log.records()) == before
    assert json.loads(log.records()[-1].key) == {"keytype": "MODE", "subject": "s", "magic": 0}
    assert json.loads(log.records()[-1].value or b"") == {"mode": "READWRITE"}
    assert registry.delete_mode("s") is Mode.READWRITE
    assert log.records()[-1].value is None  # a tombstone
    with pytest.raises(SubjectNotFoundError):
        registry.delete_mode("s")
    assert registry.delete_mode(None) is Mode.READONLY
    assert registry.mode() is Mode.READWRITE


@pytest.mark.parametrize("bad", ["SIDEWAYS", "READONLY_OVERRIDE", "", None, 3])
def test_invalid_modes_are_42204(registry: SchemaRegistry, bad: object) -> None:
    with pytest.raises(InvalidModeError) as caught:
        registry.set_mode("s", bad)
    assert caught.value.error_code == 42204


def test_read_only_refuses_registrations_and_deletes(registry: SchemaRegistry) -> None:
    registry.register("s", req(V1))
    registry.register("t", req(V1))
    registry.set_mode("s", "READONLY")
    _refused(lambda: registry.register("s", req(V2)), "Subject s is in read-only mode")
    _refused(lambda: registry.delete_version("s", 1), "Subject s is in read-only mode")
    _refused(lambda: registry.delete_subject("s"), "Subject s is in read-only mode")
    # Reads, lookups, compatibility tests and other subjects go on.
    assert registry.versions("s") == [1]
    assert registry.lookup("s", req(V1)).version == 1
    assert registry.test_compatibility("s", req(V2)) == []
    assert registry.register("t", req(V2)).version == 2
    # The global mode applies to subjects without their own.
    registry.set_mode(None, "READONLY")
    _refused(lambda: registry.register("t", req(BREAKS)), "Subject t is in read-only mode")
    registry.set_mode("s", "READWRITE")
    assert registry.register("s", req(V2)).version == 2


def test_import_keeps_ids_and_versions(registry: SchemaRegistry) -> None:
    assert registry.set_mode(None, "IMPORT") is Mode.IMPORT
    first = registry.register("s", req(V1, schema_id=42, version=3))
    assert (first.schema_id, first.version) == (42, 3)
    # No compatibility check while importing; without a version, the next one.
    second = registry.register("s", req(BREAKS, schema_id=7))
    assert (second.schema_id, second.version) == (7, 4)
    # The same schema with its id again is the same version (an import can be re-run).
    assert registry.register("s", req(V1, schema_id=42, version=3)) == first
    assert registry.register("s", req(V1, schema_id=42)) == first
    # Another subject may hold the same id for the same schema.
    assert registry.register("u", req(V1, schema_id=42, version=1)).schema_id == 42
    assert registry.schema_by_id(42) == first.schema
    registry.set_mode(None, "READWRITE")
    # New ids continue after the largest imported one; identical schemas reuse their id.
    assert registry.register("t", req(V2)).schema_id == 43
    assert registry.register("v", req(V1)).schema_id == 42


def test_import_refuses_clashes(registry: SchemaRegistry) -> None:
    registry.set_mode(None, "IMPORT")
    registry.register("s", req(V1, schema_id=5, version=1))
    _refused(
        lambda: registry.register("s", req(V2, schema_id=5, version=2)),
        "Overwrite new schema with id 5 is not permitted",
    )
    _refused(
        lambda: registry.register("t", req(V2, schema_id=5)),
        "Overwrite new schema with id 5 is not permitted",
    )
    _refused(
        lambda: registry.register("s", req(V2, schema_id=6, version=1)),
        "Overwrite new schema for subject s version 1 is not permitted",
    )
    _refused(lambda: registry.register("s", req(V2)), "not in read-write mode")
    assert registry.versions("s") == [1]


def test_an_id_outside_import_mode_is_refused(registry: SchemaRegistry) -> None:
    _refused(lambda: registry.register("s", req(V1, schema_id=9)), "not in import mode")
    registry.register("s", req(V1, version=1))  # the version it would get anyway
    with pytest.raises(InvalidSchemaError, match="not one more than previous version"):
        registry.register("s", req(V2, version=5))
    assert registry.register("s", req(V2, version=2)).version == 2


def test_import_needs_an_empty_registry_or_subject_unless_forced(
    registry: SchemaRegistry,
) -> None:
    registry.register("s", req(V1))
    registry.delete_subject("s")  # soft-deleted versions still count
    _refused(lambda: registry.set_mode(None, "IMPORT"), "Cannot import since found existing")
    _refused(lambda: registry.set_mode("s", "IMPORT"), "Cannot import since found existing")
    assert registry.set_mode("empty", "IMPORT") is Mode.IMPORT
    assert registry.set_mode("s", "IMPORT", force=True) is Mode.IMPORT
    # Already IMPORT: setting it again needs no check.
    assert registry.set_mode("s", "IMPORT") is Mode.IMPORT
    registry.delete_subject("s", permanent=True)
    registry.delete_mode("s")
    assert registry.set_mode(None, "IMPORT") is Mode.IMPORT


def test_modes_survive_a_replay_and_compaction(
    registry: SchemaRegistry, log: InMemorySchemaLog
) -> None:
    registry.set_mode(None, "IMPORT")
    registry.register("s", req(V1, schema_id=10, version=2))
    registry.set_mode("s", "READONLY")
    registry.set_mode("t", "READWRITE")
    registry.delete_mode("t")
    registry.set_mode(None, "READWRITE")
    state = registry.snapshot()
    assert state["modes"] == {"None": "READWRITE", "s": "READONLY"}
    for copy in (log, log.compacted(), log.compacted(drop_tombstones=True)):
        again = replayed(copy)
        assert again.snapshot() == state
        assert again.mode("s") is Mode.READONLY
        _refused(lambda r=again: r.register("s", req(V2)), "read-only")  # type: ignore[misc]


def test_mode_records_decode() -> None:
    assert rec.decode(rec.mode_key(None), rec.mode_value(Mode.IMPORT)) == rec.ModeRecord(
        None, Mode.IMPORT
    )
    assert rec.decode(rec.mode_key("s"), None) == rec.ModeRecord("s", None)
    assert rec.mode_key("s") == b'{"keytype":"MODE","subject":"s","magic":0}'


# ---------------------------------------------------------------- HTTP


def test_mode_endpoints(client: TestClient) -> None:
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    assert client.put("/mode/s", json={"mode": "readonly"}).json() == {"mode": "READONLY"}
    assert client.get("/mode/s").json() == {"mode": "READONLY"}
    refused = client.post("/subjects/s/versions", json={"schema": V1})
    assert (refused.status_code, refused.json()["error_code"]) == (422, 42205)
    assert refused.json()["message"] == "Subject s is in read-only mode"
    assert client.delete("/mode/s").json() == {"mode": "READONLY"}
    missing = client.get("/mode/s")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40409)
    assert client.delete("/mode/s").json()["error_code"] == 40401
    bad = client.put("/mode", json={"mode": "SIDEWAYS"})
    assert (bad.status_code, bad.json()["error_code"]) == (422, 42204)


def test_import_over_http(client: TestClient) -> None:
    client.post("/subjects/old/versions", json={"schema": V1})
    refused = client.put("/mode", json={"mode": "IMPORT"})
    assert (refused.status_code, refused.json()["error_code"]) == (422, 42205)
    assert client.put("/mode?force=true", json={"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
    imported = client.post(
        "/subjects/s/versions", json={"schema": V2, "id": 100, "version": 4, "schemaType": "AVRO"}
    )
    assert imported.json() == {"id": 100, "version": 4}
    clash = client.post("/subjects/s/versions", json={"schema": V1, "id": 100})
    assert (clash.status_code, clash.json()["error_code"]) == (422, 42205)
    for body, code in (({"id": "x"}, 42201), ({"id": 2**31}, 42201), ({"version": -3}, 42202)):
        response = client.post("/subjects/s/versions", json={"schema": V1, **body})
        assert (response.status_code, response.json()["error_code"]) == (422, code)
    assert client.get("/schemas/ids/100").status_code == 200


def test_config_accepts_compatibility_level_too(client: TestClient) -> None:
    assert client.put("/config", json={"compatibilityLevel": "full"}).json() == {
        "compatibility": "FULL"
    }
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.put("/config/s", json={"compatibilityLevel": "NONE"}).json() == {
        "compatibility": "NONE"
    }
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}
    bad = client.put("/config/s", json={"compatibilityLevel": "SIDEWAYS"})
    assert (bad.status_code, bad.json()["error_code"]) == (422, 42203)
