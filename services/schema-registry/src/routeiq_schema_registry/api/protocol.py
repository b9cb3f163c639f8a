"""Confluent's HTTP conventions, shared by every router: routing, media type, request bodies,
path and query parameters, paging, and the JSON shape of a version.

Core calls run in the thread pool (``call``): a write waits for Kafka and must not block the
event loop.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Router

from routeiq_schema_registry.core.registry import SchemaRegistry
from routeiq_schema_registry.core.requests import SchemaRequest
from routeiq_schema_registry.core.state import SchemaVersion
from routeiq_schema_registry.errors import (
    BadRequestError,
    InvalidSchemaError,
    InvalidVersionError,
    SchemaNotFoundError,
    UnsupportedMediaTypeError,
)

T = TypeVar("T")

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_CONTENT_TYPES = frozenset(
    {MEDIA_TYPE, "application/vnd.schemaregistry+json", "application/json"}
)


Handler = Callable[[Request], Awaitable[Response]]

_MAX_INT = 2**31 - 1


class ResourceRouter(Router):
    """A Starlette ``Router`` whose handlers declare their own paths (``@router.get(path)``),
    as FastAPI's ``APIRouter`` does; the app mounts each resource's ``routes``."""

    def _on(self, method: str, paths: tuple[str, ...]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for path in paths:
                self.add_route(path, handler, methods=[method])
            return handler

        return register

    def get(self, *paths: str) -> Callable[[Handler], Handler]:
        return self._on("GET", paths)

    def post(self, *paths: str) -> Callable[[Handler], Handler]:
        return self._on("POST", paths)

    def put(self, *paths: str) -> Callable[[Handler], Handler]:
        return self._on("PUT", paths)

    def delete(self, *paths: str) -> Callable[[Handler], Handler]:
        return self._on("DELETE", paths)


class RegistryJSONResponse(JSONResponse):
    media_type = MEDIA_TYPE


def answer(content: Any, status_code: int = 200) -> Response:
    """A JSON answer in the registry's media type."""
    return RegistryJSONResponse(content, status_code=status_code)


def raw_schema(text: str) -> Response:
    """A schema's text as the body itself (the ``/schema`` endpoints)."""
    return Response(text, media_type=MEDIA_TYPE)


async def call(request: Request, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``operation(registry, *args, **kwargs)`` on the app's registry, off the event loop."""
    registry: SchemaRegistry = request.app.state.registry
    return await run_in_threadpool(operation, registry, *args, **kwargs)


def path_param(request: Request, name: str) -> str:
    """A path parameter as the client sent it (see ``api.app.EncodedSlashes``)."""
    return unquote(str(request.path_params[name]))


def optional_path_param(request: Request, name: str) -> str | None:
    """A path parameter that only some of a handler's routes carry."""
    return path_param(request, name) if name in request.path_params else None


def flag(request: Request, name: str) -> bool:
    # Python clients format booleans as "True"/"False" in query strings; compare any case.
    return request.query_params.get(name, "").strip().lower() == "true"


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequestError(f"query parameter {name} must be an integer, got {raw!r}") from None


def page(items: Sequence[T], request: Request) -> list[T]:
    """Apply Confluent's ``offset`` / ``limit`` (limit -1 or 0: everything)."""
    offset = max(0, _int_param(request, "offset", 0))
    limit = _int_param(request, "limit", -1)
    return list(items[offset : offset + limit] if limit > 0 else items[offset:])


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or 415 / 400 saying why it is not one."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in ACCEPTED_CONTENT_TYPES:
            raise UnsupportedMediaTypeError(
                f"HTTP 415 Unsupported Media Type: {media!r}; send one of "
                f"{', '.join(sorted(ACCEPTED_CONTENT_TYPES))}"
            )
    raw = await request.body()
    if not raw.strip():
        raise BadRequestError("The request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"Malformed JSON in the request body: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequestError(f"Expected a JSON object, got {type(body).__name__}")
    return body


async def schema_request(request: Request) -> SchemaRequest:
    """The schema a register, lookup or compatibility request carries (42201 if unusable)."""
    body = await json_body(request)
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise InvalidSchemaError(
            'The request needs a "schema" field holding the Avro schema as a JSON string'
        )
    schema_type = body.get("schemaType")
    if schema_type is not None and not isinstance(schema_type, str):
        raise InvalidSchemaError(f'"schemaType" must be a string, got {schema_type!r}')
    references = body.get("references")
    if references is not None and not isinstance(references, list):
        raise InvalidSchemaError(f'"references" must be a list, got {references!r}')
    extras = tuple(name for name in ("metadata", "ruleSet") if body.get(name))
    return SchemaRequest(
        schema,
        schema_type,
        references,
        extras,
        schema_id=_body_int(body, "id"),
        version=_body_int(body, "version"),
    )


def _body_int(body: dict[str, Any], name: str) -> int | None:
    """An optional integer of a register request (``id``, ``version``: IMPORT mode). Absent,
    null, or Confluent's "not given" values (-1 for an id, 0 for a version) are None."""
    value = body.get(name)
    valid = isinstance(value, int) and not isinstance(value, bool)
    if value is None or (valid and value in (-1, 0)):
        return None
    if not valid or not 1 <= value <= _MAX_INT:
        if name == "version":
            raise InvalidVersionError(value)
        raise InvalidSchemaError(
            f'"{name}" must be an integer between 1 and {_MAX_INT}, got {value!r}'
        )
    assert isinstance(value, int)
    return value


def schema_id(request: Request) -> int:
    """The ``{id}`` path parameter; one that is not a number names no schema (40403)."""
    raw = path_param(request, "id")
    try:
        return int(raw)
    except ValueError:
        raise SchemaNotFoundError(f"Schema {raw} not found") from None


def version_json(sv: SchemaVersion) -> dict[str, Any]:
    return {"subject": sv.subject, "version": sv.version, "id": sv.schema_id, "schema": sv.schema}
