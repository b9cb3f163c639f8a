"""``GET /openapi.json``: the gateway's OpenAPI 3.1 document, generated from the app itself.

Paths and methods come from the app's routes; each handler carries its ``Operation`` (set by
``documented``); request bodies are the JSON schemas of the models in ``request_models`` that
validate them, with pydantic's ``$defs`` as ``components/schemas``. Nothing is written twice,
so the document cannot drift from what the gateway accepts. It holds no secrets: no key needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from routeiq_gateway.api import health

F = TypeVar("F", bound=Callable[..., Any])
_REF = "#/components/schemas/{model}"
# The statuses GatewayError and Starlette's handlers answer with, and what each means here.
STATUS_TEXT = {
    400: "The request is malformed; `error.param` names the field.",
    401: "No valid key was given (the admin key on /admin, an API key where keys are on).",
    403: "The admin key is wrong.",
    404: "The model, decision or endpoint named does not exist here.",
    413: "The body is over the gateway's size limit.",
    415: "The body is not `application/json`.",
    429: "The upstream is rate limiting, or the team's budget is spent (`insufficient_quota`).",
    502: "The upstream failed after LiteLLM's retries and fallbacks.",
    503: "The key store does not answer and the key was not verified lately; retry.",
    504: "The upstream timed out.",
}
_BODY_ERRORS = (400, 413, 415)
_PATH_PARAM = re.compile(r"{([^}:]+)}")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx: OpenAI's error shape."""

    error: ErrorDetail


class JsonObject(BaseModel):
    """A JSON object whose fields are described in docs/gateway.md."""

    model_config = ConfigDict(extra="allow")


class ChatCompletion(BaseModel):
    """OpenAI's ``chat.completion`` object, as the upstream returned it."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: str
    created: int
    model: str
    choices: list[dict[str, Any]]


class ModelCard(BaseModel):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: str
    data: list[ModelCard]


class FeedbackAccepted(BaseModel):
    feedback_id: str
    status: str


@dataclass(frozen=True)
class Operation:
    """What the document says about one handler; its body and query models validate it."""

    summary: str
    ok: type[BaseModel] | None = JsonObject  # the 2xx body (None: not JSON)
    ok_status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    media: dict[str, Any] = field(default_factory=dict)  # further 2xx media types
    headers: dict[str, str] = field(default_factory=dict)  # 2xx headers: name -> meaning


def documented(operation: Operation) -> Callable[[F], F]:
    """Attach ``operation`` to a handler (``admin_only`` keeps it and marks the handler)."""

    def attach(handler: F) -> F:
        handler.openapi = operation  # type: ignore[attr-defined]
        return handler

    return attach


def operation_of(endpoint: Any) -> Operation | None:
    found: Operation | None = getattr(endpoint, "openapi", None)
    return found or _HEALTH.get(endpoint)


_PROMETHEUS = {"text/plain": {"schema": {"type": "string"}}}
# health.py states no operations of its own: they are described here.
_HEALTH: dict[Any, Operation] = {
    health.live: Operation("Liveness: the process answers."),
    health.ready: Operation("Readiness, the router's state and the event pipeline's."),
    health.metrics: Operation("Prometheus metrics.", ok=None, media=_PROMETHEUS),
}


def build_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (every ``Route`` must be ``documented``)."""
    entries: list[tuple[str, str, Operation, bool]] = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        op = operation_of(route.endpoint)
        if op is None:
            raise LookupError(f"route {route.path} has no OpenAPI operation")
        admin = getattr(route.endpoint, "needs_admin_key", False)
        entries += [
            (route.path, m.lower(), op, admin) for m in sorted(route.methods or ()) if m != "HEAD"
        ]
    models: set[type[BaseModel]] = {ErrorResponse}
    for _, _, op, _ in entries:
        models |= {m for m in (op.ok, op.body) if m is not None}
    schemas, top = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=_REF
    )
    components = dict(top.get("$defs", {}))
    for (model, _), schema in schemas.items():
        components.setdefault(model.__name__, schema)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op, admin in entries:
        paths.setdefault(path, {})[method] = _operation(op, method, path, admin=admin)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RouteIQ gateway",
            "version": version("routeiq-gateway"),
            "description": "OpenAI-compatible chat completions with learned routing.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "adminBearer": {"type": "http", "scheme": "bearer"},
                "adminKey": {"type": "apiKey", "in": "header", "name": "x-routeiq-admin-key"},
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The master key or a virtual key, needed on chat and "
                    "feedback only when the gateway has keys configured.",
                },
            },
        },
        # The OpenAI surface: a key when keys are configured, none otherwise (``{}``); the
        # admin operations override this with the admin key.
        "security": [{"apiKey": []}, {}],
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(op: Operation, method: str, path: str, *, admin: bool) -> dict[str, Any]:
    content = {} if op.ok is None else {"application/json": {"schema": _ref(op.ok)}}
    responses: dict[str, Any] = {
        str(op.ok_status): {"description": op.summary, "content": {**content, **op.media}}
    }
    if op.headers:
        responses[str(op.ok_status)]["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in op.headers.items()
        }
    codes = set(op.errors) | (set(_BODY_ERRORS) if op.body else set())
    if admin:
        codes |= {401, 403}
    if op.query:
        codes.add(400)
    error = {"application/json": {"schema": _ref(ErrorResponse)}}
    for code in sorted(codes):
        responses[str(code)] = {"description": STATUS_TEXT[code], "content": error}
    spec: dict[str, Any] = {
        "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('.', '_')}",
        "summary": op.summary,
        "responses": responses,
    }
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    if op.query is not None:
        query = op.query.model_json_schema()
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in query["properties"].items()
        ]
    if parameters:
        spec["parameters"] = parameters
    if admin:
        spec["security"] = [{"adminBearer": []}, {"adminKey": []}]
    return spec


def openapi_route(routes: Sequence[BaseRoute]) -> Route:
    """``GET /openapi.json`` for ``routes`` (and itself), built once on first request."""
    built: list[dict[str, Any]] = []

    @documented(Operation("This document: the gateway's OpenAPI 3.1 description."))
    async def openapi(_: Request) -> Response:
        if not built:
            built.append(build_document([*routes, route]))
        return JSONResponse(built[0])

    route = Route("/openapi.json", openapi, methods=["GET"])
    return route
