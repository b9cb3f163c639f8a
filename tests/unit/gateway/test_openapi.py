"""The gateway's OpenAPI document: served without a key, a valid OpenAPI 3.1 document,
generated from the request models that validate each route (so it cannot drift)."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from pydantic import ValidationError
from routeiq_gateway.api.app import ROUTES
from routeiq_gateway.api.openapi import build_document, openapi_route
from routeiq_gateway.errors import BadRequest, invalid
from routeiq_gateway.request_models import ChatCompletionRequest, FeedbackBody, parse
from routeiq_gateway.upstream import PASSTHROUGH
from starlette.routing import Route


def _validate(document: dict[str, Any]) -> None:
    """openapi-spec-validator where installed, else schemathesis's OpenAPI 3.1 meta-schema."""
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        from openapi_spec_validator import validate

        validate(document)
        return
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    OPENAPI_31_VALIDATOR.validate(document)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {node["$ref"]} if "$ref" in node else set().union(*map(_refs, node.values()))
    if isinstance(node, list):
        return set().union(*map(_refs, node))
    return set()


def test_the_document_is_served_without_a_key_and_is_valid_openapi_31(wired) -> None:
    client, _, _ = wired
    r = client.get("/openapi.json")
    assert r.status_code == 200
    document = r.json()
    assert document["openapi"] == "3.1.0"
    _validate(document)
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "$defs" not in json.dumps(document)


def test_a_broken_document_fails_validation() -> None:
    document = build_document(ROUTES)
    document["paths"]["/v1/feedback"]["post"]["responses"] = "none"
    with pytest.raises(ValueError, match="none"):
        _validate(document)


def test_every_route_and_method_is_described(wired) -> None:
    client, _, _ = wired
    paths = client.get("/openapi.json").json()["paths"]
    for route in [*ROUTES, openapi_route(ROUTES)]:
        assert isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}:
            spec = paths[route.path][method.lower()]
            admin = route.path.startswith("/admin")
            assert ("security" in spec) == admin, route.path
            codes = set(spec["responses"])
            assert ({"401", "403"} <= codes) == admin, route.path
            if "requestBody" in spec:
                assert {"400", "413", "415"} <= codes, route.path
    chat = paths["/v1/chat/completions"]["post"]
    assert {"200", "400", "404", "413", "429", "502", "504"} <= set(chat["responses"])
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert "x-routeiq-decision-id" in chat["responses"]["200"]["headers"]
    assert paths["/admin/audit"]["get"]["parameters"][0]["name"] == "limit"


def test_an_undescribed_route_is_refused() -> None:
    async def secret(_: Any) -> Any:
        raise AssertionError

    with pytest.raises(LookupError, match="/secret"):
        build_document([*ROUTES, Route("/secret", secret)])


def test_request_bodies_are_the_models_schemas() -> None:
    document = build_document(ROUTES)
    schemas = document["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    for model in (ChatCompletionRequest, FeedbackBody):
        own = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, schema in own.pop("$defs", {}).items():
            assert schemas[name] == schema, name
        assert schemas[model.__name__] == own
    assert set(PASSTHROUGH) <= set(chat["properties"])  # every forwarded field is typed
    assert chat["properties"]["temperature"]["anyOf"][0] == {
        "type": "number",
        "minimum": 0,
        "maximum": 2,
    }
    assert schemas["FeedbackBody"]["additionalProperties"] is False
    assert chat["properties"]["stream"]["type"] == "boolean"
    function = schemas["FunctionDefinition"]["properties"]
    assert function["name"]["pattern"] == "^[a-zA-Z0-9_-]{1,64}$"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "string or an array",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}
                ]
            },
            "messages[0].content[0].image_url.url",
            "must be a string",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]},
            "messages[0].content[0].type",
            "one of",
        ),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
            "is required",
        ),
        (
            {
                "messages": [{"role": "user"}],
                "tools": [{"type": "function", "function": {"name": "a b"}}],
            },
            "tools[0].function.name",
            "^[a-zA-Z0-9_-]{1,64}$",
        ),
        (
            {"messages": [{"role": "user"}], "response_format": {"type": "json_schema"}},
            "response_format.json_schema",
            "required",
        ),
        ({"messages": [{"role": "user"}], "stream": 1}, "stream", "boolean"),
        ({"messages": [{"role": "user"}], "seed": 1.5}, "seed", "integer"),
    ],
)
def test_validation_errors_name_the_field_path(body: dict, param: str, fragment: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(ChatCompletionRequest, body)
    assert caught.value.param == param
    assert fragment in caught.value.message
    assert caught.value.status == 400


def test_unknown_fields_are_passed_over_in_chat_and_refused_in_feedback() -> None:
    assert parse(ChatCompletionRequest, {"messages": [{"role": "user"}], "store": True})
    try:
        FeedbackBody.model_validate(
            {"decision_id": "d", "score": 1, "source": "user", "zz": 1, "aa": 2}
        )
    except ValidationError as exc:
        error = invalid(exc, {"decision_id": "d", "score": 1, "source": "user", "zz": 1, "aa": 2})
    assert (error.param, error.message) == ("aa", "unknown field(s) ['aa', 'zz']")
