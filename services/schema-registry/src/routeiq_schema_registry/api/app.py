"""Confluent Schema Registry's REST API (the Avro subset) over a ``SchemaRegistry``.

Handlers only translate HTTP to core calls and results to Confluent's JSON shapes; every
decision lives in ``core``. Errors become ``{"error_code": N, "message": ...}`` through the one
table in ``routeiq_schema_registry.errors``. Core calls run in the thread pool: a write waits
for Kafka and must not block the event loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

from routeiq.errors import RouteIQError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from routeiq_schema_registry.core.registry import SchemaRegistry, SchemaRequest
from routeiq_schema_registry.core.state import SchemaVersion
from routeiq_schema_registry.errors import (
    BadRequestError,
    InvalidSchemaError,
    MethodNotAllowedError,
    RouteNotFoundError,
    SchemaNotFoundError,
    UnsupportedMediaTypeError,
    confluent_error,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_CONTENT_TYPES = frozenset(
    {MEDIA_TYPE, "application/vnd.schemaregistry+json", "application/json"}
)
# Confluent's way of saying "every subject, all contexts" in GET /subjects?subjectPrefix=.
_ALL_SUBJECTS_PREFIX = ":*:"


class RegistryJSONResponse(JSONResponse):
    media_type = MEDIA_TYPE


def _json(content: Any, status_code: int = 200) -> Response:
    return RegistryJSONResponse(content, status_code=status_code)


# ---------------------------------------------------------------------------- request helpers


def _registry(request: Request) -> SchemaRegistry:
    registry: SchemaRegistry = request.app.state.registry
    return registry


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


def _path(request: Request, name: str) -> str:
    """A path parameter as the client sent it (see ``EncodedSlashes``)."""
    return unquote(str(request.path_params[name]))


def _flag(request: Request, name: str) -> bool:
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


def _page(items: Sequence[T], request: Request) -> list[T]:
    """Apply Confluent's ``offset`` / ``limit`` (limit -1 or 0: everything)."""
    offset = max(0, _int_param(request, "offset", 0))
    limit = _int_param(request, "limit", -1)
    return list(items[offset : offset + limit] if limit > 0 else items[offset:])


async def _json_body(request: Request) -> dict[str, Any]:
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


async def _schema_request(request: Request) -> SchemaRequest:
    body = await _json_body(request)
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
    return SchemaRequest(schema, schema_type, references, extras)


def _schema_id(request: Request) -> int:
    raw = _path(request, "id")
    try:
        return int(raw)
    except ValueError:
        raise SchemaNotFoundError(f"Schema {raw} not found") from None


def _version_json(sv: SchemaVersion) -> dict[str, Any]:
    return {"subject": sv.subject, "version": sv.version, "id": sv.schema_id, "schema": sv.schema}


# ---------------------------------------------------------------------------- handlers


async def root(request: Request) -> Response:
    return _json({})


async def health_live(request: Request) -> Response:
    return _json({"status": "live"})


async def health_ready(request: Request) -> Response:
    progress = _registry(request).progress()
    return _json(progress, 200 if progress["ready"] else 503)


async def list_subjects(request: Request) -> Response:
    prefix = request.query_params.get("subjectPrefix") or request.query_params.get("subject")
    subjects = await _run(
        _registry(request).subjects,
        deleted=_flag(request, "deleted"),
        deleted_only=_flag(request, "deleted_only"),
    )
    if prefix and prefix != _ALL_SUBJECTS_PREFIX:
        subjects = [s for s in subjects if s.startswith(prefix)]
    return _json(_page(subjects, request))


async def lookup_schema(request: Request) -> Response:
    body = await _schema_request(request)
    sv = await _run(
        _registry(request).lookup,
        _path(request, "subject"),
        body,
        normalize=_flag(request, "normalize"),
        deleted=_flag(request, "deleted"),
    )
    return _json(_version_json(sv))


async def delete_subject(request: Request) -> Response:
    versions = await _run(
        _registry(request).delete_subject,
        _path(request, "subject"),
        permanent=_flag(request, "permanent"),
    )
    return _json(versions)


async def list_versions(request: Request) -> Response:
    versions = await _run(
        _registry(request).versions,
        _path(request, "subject"),
        deleted=_flag(request, "deleted"),
        deleted_only=_flag(request, "deleted_only"),
    )
    return _json(_page(versions, request))


async def register_schema(request: Request) -> Response:
    body = await _schema_request(request)
    sv = await _run(
        _registry(request).register,
        _path(request, "subject"),
        body,
        normalize=_flag(request, "normalize"),
    )
    # No "schema" in the answer: confluent-kafka's client then caches the id under the schema
    # object it sent, so the next register of the same object needs no request.
    return _json({"id": sv.schema_id, "version": sv.version})


async def get_version(request: Request) -> Response:
    sv = await _run(
        _registry(request).version,
        _path(request, "subject"),
        _path(request, "version"),
        deleted=_flag(request, "deleted"),
    )
    return _json(_version_json(sv))


async def get_version_schema(request: Request) -> Response:
    sv = await _run(
        _registry(request).version,
        _path(request, "subject"),
        _path(request, "version"),
        deleted=_flag(request, "deleted"),
    )
    return Response(sv.schema, media_type=MEDIA_TYPE)


async def get_referenced_by(request: Request) -> Response:
    ids = await _run(
        _registry(request).referenced_by, _path(request, "subject"), _path(request, "version")
    )
    return _json(ids)


async def delete_version(request: Request) -> Response:
    version = await _run(
        _registry(request).delete_version,
        _path(request, "subject"),
        _path(request, "version"),
        permanent=_flag(request, "permanent"),
    )
    return _json(version)


async def get_schema_by_id(request: Request) -> Response:
    # ?subject= and ?format= (sent by confluent-kafka's client) do not change an Avro answer.
    text = await _run(_registry(request).schema_by_id, _schema_id(request))
    return _json({"schema": text})


async def get_raw_schema_by_id(request: Request) -> Response:
    text = await _run(_registry(request).schema_by_id, _schema_id(request))
    return Response(text, media_type=MEDIA_TYPE)


async def get_versions_of_id(request: Request) -> Response:
    holders = await _run(
        _registry(request).versions_of_id, _schema_id(request), deleted=_flag(request, "deleted")
    )
    subject = request.query_params.get("subject")
    pairs = [
        {"subject": sv.subject, "version": sv.version}
        for sv in holders
        if not subject or sv.subject == subject
    ]
    return _json(_page(pairs, request))


async def get_subjects_of_id(request: Request) -> Response:
    holders = await _run(
        _registry(request).versions_of_id, _schema_id(request), deleted=_flag(request, "deleted")
    )
    subject = request.query_params.get("subject")
    subjects = sorted({sv.subject for sv in holders if not subject or sv.subject == subject})
    return _json(_page(subjects, request))


async def get_schema_types(request: Request) -> Response:
    return _json(["AVRO"])


def _config_subject(request: Request) -> str | None:
    return _path(request, "subject") if "subject" in request.path_params else None


async def get_config(request: Request) -> Response:
    level = await _run(
        _registry(request).compatibility,
        _config_subject(request),
        default_to_global=_flag(request, "defaultToGlobal"),
    )
    return _json({"compatibilityLevel": level.value})


async def put_config(request: Request) -> Response:
    body = await _json_body(request)
    level = await _run(
        _registry(request).set_compatibility, _config_subject(request), body.get("compatibility")
    )
    return _json({"compatibility": level.value})


async def delete_config(request: Request) -> Response:
    level = await _run(_registry(request).delete_compatibility, _config_subject(request))
    return _json({"compatibilityLevel": level.value})


async def test_compatibility(request: Request) -> Response:
    body = await _schema_request(request)
    version = _path(request, "version") if "version" in request.path_params else None
    messages = await _run(
        _registry(request).test_compatibility,
        _path(request, "subject"),
        body,
        version,
        normalize=_flag(request, "normalize"),
    )
    answer: dict[str, Any] = {"is_compatible": not messages}
    if _flag(request, "verbose"):
        answer["messages"] = messages
    return _json(answer)


async def get_contexts(request: Request) -> Response:
    # Confluent's schema contexts are not supported: everything lives in the default one.
    return _json(["."])


async def get_mode(request: Request) -> Response:
    # Read-only: this registry is always READWRITE (no IMPORT / READONLY modes).
    return _json({"mode": "READWRITE"})


# ---------------------------------------------------------------------------- errors


async def _on_registry_error(request: Request, exc: Exception) -> Response:
    status, code = confluent_error(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return _json({"error_code": code, "message": str(exc)}, status)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: Exception
    if exc.status_code == 404:
        error = RouteNotFoundError(f"HTTP 404 Not Found: no endpoint at {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowedError(
            f"HTTP 405 Method Not Allowed: {request.method} {request.url.path}"
        )
    else:
        return _json({"error_code": exc.status_code, "message": exc.detail}, exc.status_code)
    response = await _on_registry_error(request, error)
    response.headers.update(exc.headers or {})
    return response


async def _on_unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("%s %s: unexpected error", request.method, request.url.path)
    return _json({"error_code": 50001, "message": f"Internal error: {type(exc).__name__}"}, 500)


class EncodedSlashes:
    """Route on the path as sent, so that a subject containing ``/`` (sent as ``%2F``) stays
    one path segment. Each segment is decoded, then ``%`` and ``/`` re-escaped; handlers read
    parameters through ``_path``, which undoes exactly that escaping."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            try:
                path = raw.decode("ascii") if raw else None
            except UnicodeDecodeError:
                path = None
            if path is None:
                segments = str(scope["path"]).split("/")
            else:
                segments = [unquote(segment) for segment in path.split("/")]
            escaped = [s.replace("%", "%25").replace("/", "%2F") for s in segments]
            scope = dict(scope, path="/".join(escaped))
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------- the app


def routes() -> list[Route]:
    """Every endpoint, Confluent's paths."""
    subject = "/subjects/{subject}"
    version = subject + "/versions/{version}"
    return [
        Route("/", root, methods=["GET"]),
        Route("/health/live", health_live, methods=["GET"]),
        Route("/health/ready", health_ready, methods=["GET"]),
        Route("/subjects", list_subjects, methods=["GET"]),
        Route(subject, lookup_schema, methods=["POST"]),
        Route(subject, delete_subject, methods=["DELETE"]),
        Route(subject + "/versions", list_versions, methods=["GET"]),
        Route(subject + "/versions", register_schema, methods=["POST"]),
        Route(version, get_version, methods=["GET"]),
        Route(version, delete_version, methods=["DELETE"]),
        Route(version + "/schema", get_version_schema, methods=["GET"]),
        Route(version + "/referencedby", get_referenced_by, methods=["GET"]),
        Route("/schemas/types", get_schema_types, methods=["GET"]),
        Route("/schemas/ids/{id}", get_schema_by_id, methods=["GET"]),
        Route("/schemas/ids/{id}/schema", get_raw_schema_by_id, methods=["GET"]),
        Route("/schemas/ids/{id}/versions", get_versions_of_id, methods=["GET"]),
        Route("/schemas/ids/{id}/subjects", get_subjects_of_id, methods=["GET"]),
        Route("/config", get_config, methods=["GET"]),
        Route("/config", put_config, methods=["PUT"]),
        Route("/config", delete_config, methods=["DELETE"]),
        Route("/config/{subject}", get_config, methods=["GET"]),
        Route("/config/{subject}", put_config, methods=["PUT"]),
        Route("/config/{subject}", delete_config, methods=["DELETE"]),
        Route(
            "/compatibility" + subject + "/versions/{version}",
            test_compatibility,
            methods=["POST"],
        ),
        Route("/compatibility" + subject + "/versions", test_compatibility, methods=["POST"]),
        Route("/contexts", get_contexts, methods=["GET"]),
        Route("/mode", get_mode, methods=["GET"]),
        Route("/mode/{subject}", get_mode, methods=["GET"]),
    ]


def create_app(registry: SchemaRegistry) -> Starlette:
    """The ASGI app serving ``registry``."""
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(EncodedSlashes)],
        exception_handlers={
            RouteIQError: _on_registry_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected_error,
        },
    )
    app.state.registry = registry
    return app
