"""Confluent Schema Registry's REST API (the Avro subset) over a ``SchemaRegistry``.

Handlers (``api.routers``, one module per resource) only translate HTTP to core calls and
results to Confluent's JSON shapes; every decision lives in ``core``. Errors become
``{"error_code": N, "message": ...}`` in ``api.errors``.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from routeiq_schema_registry.api.errors import EXCEPTION_HANDLERS
from routeiq_schema_registry.api.protocol import MEDIA_TYPE
from routeiq_schema_registry.api.routers import compatibility, config, schemas, server, subjects
from routeiq_schema_registry.core.registry import SchemaRegistry

__all__ = ["MEDIA_TYPE", "EncodedSlashes", "create_app", "routes"]


class EncodedSlashes:
    """Route on the path as sent, so that a subject containing ``/`` (sent as ``%2F``) stays
    one path segment. Each segment is decoded, then ``%`` and ``/`` re-escaped; handlers read
    parameters through ``protocol.path_param``, which undoes exactly that escaping."""

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


def routes() -> list[BaseRoute]:
    """Every endpoint, Confluent's paths, resource by resource."""
    resources = (server, subjects, schemas, config, compatibility)
    return [route for resource in resources for route in resource.router.routes]


def create_app(registry: SchemaRegistry) -> Starlette:
    """The ASGI app serving ``registry``."""
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(EncodedSlashes)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    app.state.registry = registry
    return app
