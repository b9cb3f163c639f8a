"""The REST API through Starlette's TestClient over the in-memory core: Confluent's paths,
bodies, status codes and error codes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from routeiq_schema_registry.api import MEDIA_TYPE
from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry
from routeiq_schema_registry.errors import StoreError
from unit.schema_registry.helpers import field, record

if TYPE_CHECKING:
    from starlette.testclient import TestClient

V1 = record("R", field("a"))
V2 = record("R", field("a"), field("b", "string", default="x"))
BREAKS_V2 = record("R", field("a"), field("b", "string"), field("c"))


def _register(client: TestClient, subject: str, schema: str, **params: str) -> dict[str, Any]:
    response = client.post(f"/subjects/{subject}/versions", json={"schema": schema}, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: Any, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body = response.json()
    assert body["error_code"] == code
    message: str = body["message"]
    assert message
    return message


# ---------------------------------------------------------------- happy paths


def test_root_health_types_and_mode(client: TestClient) -> None:
    assert client.get("/").json() == {}
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert client.get("/schemas/types").json() == ["AVRO"]
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    # As Confluent: a subject without a mode of its own is 40409 unless defaultToGlobal.
    _error(client.get("/mode/anything"), 404, 40409)
    assert client.get("/mode/anything?defaultToGlobal=true").json() == {"mode": "READWRITE"}
    assert client.get("/contexts").json() == ["."]


def test_register_and_read_back_every_way(client: TestClient) -> None:
    assert _register(client, "orders-value", V1) == {"id": 1, "version": 1}
    assert _register(client, "orders-value", V2) == {"id": 2, "version": 2}
    # Same schema again: the existing id, no new version; another subject: the same id.
    assert _register(client, "orders-value", V1) == {"id": 1, "version": 1}
    assert _register(client, "other-value", V2) == {"id": 2, "version": 1}

    assert client.get("/subjects").json() == ["orders-value", "other-value"]
    assert client.get("/subjects", params={"subjectPrefix": "ord"}).json() == ["orders-value"]
    assert client.get("/subjects", params={"offset": 1, "limit": 1}).json() == ["other-value"]
    assert client.get("/subjects/orders-value/versions").json() == [1, 2]

    latest = client.get("/subjects/orders-value/versions/latest")
    assert latest.headers["content-type"] == MEDIA_TYPE
    body = latest.json()
    assert {k: body[k] for k in ("subject", "version", "id")} == {
        "subject": "orders-value",
        "version": 2,
        "id": 2,
    }
    assert json.loads(body["schema"]) == json.loads(client.get("/schemas/ids/2/schema").text)
    assert client.get("/subjects/orders-value/versions/-1").json() == body
    raw = client.get("/subjects/orders-value/versions/1/schema")
    assert json.loads(raw.text)["fields"] == [{"type": "int", "name": "a"}]

    # The confluent client adds ?subject= and ?format= to this one; they change nothing.
    by_id = client.get("/schemas/ids/2", params={"subject": "x", "format": "serialized"})
    assert by_id.json() == {"schema": body["schema"]}
    assert client.get("/schemas/ids/2/versions").json() == [
        {"subject": "orders-value", "version": 2},
        {"subject": "other-value", "version": 1},
    ]
    assert client.get("/schemas/ids/2/subjects").json() == ["orders-value", "other-value"]
    assert client.get("/subjects/orders-value/versions/1/referencedby").json() == []


def test_lookup(client: TestClient) -> None:
    _register(client, "s", V1)
    # The confluent client formats booleans the Python way.
    found = client.post(
        "/subjects/s?normalize=False&deleted=False",
        json={"schema": json.dumps(json.loads(V1), indent=2), "schemaType": "AVRO"},
    )
    assert found.status_code == 200
    assert {k: found.json()[k] for k in ("subject", "version", "id")} == {
        "subject": "s",
        "version": 1,
        "id": 1,
    }
    assert "schema" in found.json()
    _error(client.post("/subjects/s", json={"schema": V2}), 404, 40403)
    _error(client.post("/subjects/nope", json={"schema": V1}), 404, 40401)


def test_deletes(client: TestClient) -> None:
    _register(client, "s", V1)
    _register(client, "s", V2)
    assert client.delete("/subjects/s/versions/1").json() == 1
    _error(client.delete("/subjects/s/versions/1"), 404, 40406)
    _error(client.delete("/subjects/s/versions/2?permanent=true"), 404, 40407)
    assert client.get("/subjects/s/versions").json() == [2]
    assert client.get("/subjects/s/versions?deleted=true").json() == [1, 2]
    _error(client.get("/subjects/s/versions/1"), 404, 40402)
    assert client.get("/subjects/s/versions/1?deleted=true").json()["version"] == 1
    assert client.delete("/subjects/s/versions/1?permanent=true").json() == 1

    _error(client.delete("/subjects/s?permanent=true"), 404, 40405)
    assert client.delete("/subjects/s").json() == [2]
    _error(client.delete("/subjects/s"), 404, 40404)
    assert client.get("/subjects").json() == []
    assert client.get("/subjects?deleted=true").json() == ["s"]
    _error(client.get("/subjects/s/versions"), 404, 40401)
    assert client.delete("/subjects/s?permanent=true").json() == [2]
    _error(client.delete("/subjects/s"), 404, 40401)
    _error(client.get("/schemas/ids/1"), 404, 40403)


def test_config(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    message = _error(client.get("/config/s"), 404, 40408)
    assert "does not have subject-level compatibility" in message
    assert client.get("/config/s?defaultToGlobal=true").json() == {"compatibilityLevel": "BACKWARD"}
    for level in (
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ):
        put = client.put("/config/s", json={"compatibility": level})
        assert put.json() == {"compatibility": level}
        assert client.get("/config/s").json() == {"compatibilityLevel": level}
    assert client.put("/config", json={"compatibility": "full"}).json() == {"compatibility": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.delete("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert client.delete("/config/s").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    _error(client.delete("/config/s"), 404, 40401)


def test_compatibility_endpoint(client: TestClient) -> None:
    _register(client, "s", V1)
    _register(client, "s", V2)
    ok = client.post("/compatibility/subjects/s/versions/latest", json={"schema": V2})
    assert ok.json() == {"is_compatible": True}
    bad = client.post(
        "/compatibility/subjects/s/versions/latest?verbose=True", json={"schema": BREAKS_V2}
    )
    assert bad.status_code == 200
    assert bad.json()["is_compatible"] is False
    (reason,) = bad.json()["messages"]
    assert "version 2" in reason
    every = client.post("/compatibility/subjects/s/versions?verbose=true", json={"schema": V1})
    assert every.json() == {"is_compatible": True, "messages": []}
    _error(client.post("/compatibility/subjects/s/versions/9", json={"schema": V1}), 404, 40402)


def test_incompatible_registration_is_409_with_the_reasons(client: TestClient) -> None:
    _register(client, "s", V1)
    _register(client, "s", V2)
    message = _error(client.post("/subjects/s/versions", json={"schema": BREAKS_V2}), 409, 409)
    assert "incompatible" in message
    assert "version 2" in message
    assert "reader_field_missing_default_value" in message


def test_subject_names_with_slashes_and_percent_signs(client: TestClient) -> None:
    assert _register(client, "team%2Forders%25", V1)["id"] == 1
    assert client.get("/subjects").json() == ["team/orders%"]
    latest = client.get("/subjects/team%2Forders%25/versions/latest").json()
    assert latest["subject"] == "team/orders%"


# ---------------------------------------------------------------- request errors


def test_invalid_schemas_are_42201_with_the_parser_message(client: TestClient) -> None:
    message = _error(
        client.post("/subjects/s/versions", json={"schema": '{"type": "record"}'}), 422, 42201
    )
    assert "Invalid schema" in message
    assert "name" in message.lower()
    _error(client.post("/subjects/s/versions", json={"schema": "{not json"}), 422, 42201)
    _error(client.post("/subjects/s/versions", json={"schem": V1}), 422, 42201)
    _error(client.post("/subjects/s/versions", json={"schema": 5}), 422, 42201)
    proto = client.post(
        "/subjects/s/versions", json={"schema": 'syntax = "proto3";', "schemaType": "PROTOBUF"}
    )
    assert "AVRO only" in _error(proto, 422, 42201)
    refs = client.post(
        "/subjects/s/versions",
        json={"schema": V1, "references": [{"name": "a.B", "subject": "b", "version": 1}]},
    )
    assert "references are not supported" in _error(refs, 422, 42201)
    # The confluent client always sends an empty list: that is fine.
    assert client.post(
        "/subjects/s/versions", json={"schema": V1, "schemaType": "AVRO", "references": []}
    ).json() == {"id": 1, "version": 1}


@pytest.mark.parametrize("version", ["0", "-2", "abc", "2147483648"])
def test_invalid_versions_are_42202(client: TestClient, version: str) -> None:
    _register(client, "s", V1)
    _error(client.get(f"/subjects/s/versions/{version}"), 422, 42202)
    _error(client.delete(f"/subjects/s/versions/{version}"), 422, 42202)


@pytest.mark.parametrize("body", [{"compatibility": "SIDEWAYS"}, {"compatibility": 1}, {}])
def test_invalid_levels_are_42203(client: TestClient, body: dict[str, Any]) -> None:
    _error(client.put("/config", json=body), 422, 42203)
    _error(client.put("/config/s", json=body), 422, 42203)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{bad json", 400, 400),
        (b"", 400, 400),
        (b"[1, 2]", 400, 400),
        (b"\xff\xfe", 400, 400),
    ],
)
def test_malformed_bodies_are_400(
    client: TestClient, content: bytes, status: int, code: int
) -> None:
    headers = {"content-type": "application/vnd.schemaregistry.v1+json"}
    _error(client.post("/subjects/s/versions", content=content, headers=headers), status, code)
    _error(client.put("/config", content=content, headers=headers), status, code)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/json; charset=utf-8",
    ],
)
def test_accepted_content_types(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/subjects/s/versions",
        content=json.dumps({"schema": V1}),
        headers={"content-type": content_type},
    )
    assert response.json() == {"id": 1, "version": 1}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_415(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/subjects/s/versions",
        content=json.dumps({"schema": V1}),
        headers={"content-type": content_type},
    )
    _error(response, 415, 415)


def test_unknown_routes_and_methods(client: TestClient) -> None:
    _error(client.get("/nowhere"), 404, 404)
    _error(client.get("/subjects/s/versions/1/nothing"), 404, 404)
    _error(client.get("/subjects/s"), 405, 405)
    _error(client.delete("/mode"), 405, 405)
    _error(client.get("/schemas/ids/abc"), 404, 40403)


def test_a_registry_that_is_still_replaying_answers_503(client_for: Any) -> None:
    registry = SchemaRegistry(log=InMemorySchemaLog())
    with client_for(registry) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 503
        _error(client.get("/subjects"), 503, 50003)
        _error(client.post("/subjects/s/versions", json={"schema": V1}), 503, 50003)
        registry.start(timeout_s=5)
        assert client.get("/health/ready").status_code == 200
        assert client.get("/subjects").json() == []


class _RefusingLog(InMemorySchemaLog):
    def append(self, key: bytes, value: bytes | None, *, timeout_s: float = 0.0) -> int:
        if b"NOOP" in key:
            return super().append(key, value)
        raise StoreError("cannot write to _schemas: broker down")


def test_store_failures_are_500_with_a_store_code(client_for: Any) -> None:
    registry = SchemaRegistry(log=_RefusingLog())
    registry.start(timeout_s=5)
    with client_for(registry) as client:
        message = _error(client.post("/subjects/s/versions", json={"schema": V1}), 500, 50001)
        assert "broker down" in message
