"""Fuzzing the gateway in-process: schemathesis against every operation of its own OpenAPI
document, and Hypothesis on the feedback API. No input may produce a 5xx, and every answer
must be one the document describes (status, content type, body schema)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from routeiq_gateway.api.app import ROUTES
from routeiq_gateway.api.openapi import build_document, openapi_route
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient
from support.fuzz import fuzz_settings

from .conftest import ADMIN_KEY

# Reproducible in CI (derandomize) and bounded (a few seconds per operation here).
FUZZ = fuzz_settings(max_examples=30)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
DOCUMENT = build_document([*ROUTES, openapi_route(ROUTES)])
# One path per handler: /chat/completions is /v1/chat/completions again.
DISTINCT: dict[str, tuple[str, str, dict[str, Any]]] = {}
for _path, _methods in DOCUMENT["paths"].items():
    for _method, _spec in _methods.items():
        DISTINCT.setdefault(_spec["summary"], (_method, _path, _spec))
OPERATIONS = [
    (method, path, "security" in spec, mode)
    for method, path, spec in sorted(DISTINCT.values(), key=lambda e: (e[1], e[0]))
    # Negative cases need something to break: a body or a query parameter.
    for mode in (
        [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        if "requestBody" in spec or "parameters" in spec
        else [GenerationMode.POSITIVE]
    )
]
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.mark.parametrize(("method", "path", "admin", "mode"), OPERATIONS)
def test_no_operation_answers_5xx_or_off_its_document(
    offline_app, method: str, path: str, admin: bool, mode: GenerationMode
) -> None:
    app, _, _ = offline_app
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method.upper()]

    @given(case=operation.as_strategy(generation_mode=mode))
    @FUZZ
    def fuzz(case: Any) -> None:
        # With the key, admin cases reach the handler; without it they only test the check.
        response = case.call(headers=AUTH if admin else None)
        case.validate_response(response, checks=CHECKS)

    fuzz()


def test_the_fuzzed_operations_are_every_route() -> None:
    assert {(m, p) for m, p, _, _ in OPERATIONS} >= {
        ("post", "/v1/chat/completions"),
        ("post", "/v1/feedback"),
        ("put", "/admin/strategies"),
        ("post", "/admin/model/rollback"),
        ("get", "/admin/audit"),
        ("get", "/openapi.json"),
    }


# Text a client can send: httpx escapes a lone surrogate (test_api covers that refusal).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
FIELDS = ("decision_id", "score", "source", "candidate", "judge_model", "cost_usd", "latency_ms")


@FUZZ
@given(body=JSON)
def test_feedback_never_answers_5xx_to_any_json(offline_app, body: Any) -> None:
    app, _, _ = offline_app
    r = TestClient(app).post("/v1/feedback", json=body)
    assert r.status_code in {400, 404, 413}, r.text
    assert r.json()["error"]["message"]


@FUZZ
@given(
    fields=st.dictionaries(st.sampled_from(FIELDS) | TEXT, JSON, max_size=6),
    real_id=st.booleans(),
)
def test_feedback_never_answers_5xx_to_any_field_value(
    offline_app, fields: dict[str, Any], real_id: bool
) -> None:
    app, gateway, _ = offline_app
    if real_id:
        fields["decision_id"] = gateway.ids.new()
    r = TestClient(app).post("/v1/feedback", json=fields)
    assert r.status_code in {202, 400, 404}, r.text


@FUZZ
@given(
    score=st.floats(0, 1),
    source=st.from_regex(r"[a-zA-Z0-9._:-]{1,64}", fullmatch=True),
    candidate=st.sampled_from([None, "big", "small"]),
    cost=st.none() | st.floats(0, 1e6),
    latency=st.none() | st.floats(0, 1e9),
    judge=st.none() | TEXT,
)
def test_valid_feedback_is_accepted_and_published(
    offline_app,
    score: float,
    source: str,
    candidate: str | None,
    cost: float | None,
    latency: float | None,
    judge: str | None,
) -> None:
    app, gateway, publisher = offline_app
    decision_id = gateway.ids.new()
    body = {
        "decision_id": decision_id,
        "score": score,
        "source": source,
        "candidate": candidate,
        "cost_usd": cost,
        "latency_ms": latency,
        "judge_model": judge,
    }
    r = TestClient(app).post("/v1/feedback", json=body)
    assert r.status_code == 202, r.text
    topic, key, value = publisher.records[-1]
    assert (topic, key) == ("feedback", decision_id.encode())
    record = gateway.feedback_serde.decode(value)
    assert record["feedback_id"] == r.json()["feedback_id"]
    assert math.isclose(record["score"], score)
    assert (record["source"], record["candidate"], record["judge_model"]) == (
        source,
        candidate,
        judge,
    )
