"""``/config`` (compatibility levels, global or per subject) and ``/mode``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routeiq_schema_registry.api.protocol import (
    ResourceRouter,
    answer,
    call,
    flag,
    json_body,
    optional_path_param,
)
from routeiq_schema_registry.core.registry import SchemaRegistry

router = ResourceRouter()
_CONFIG = ("/config", "/config/{subject}")


@router.get(*_CONFIG)
async def get_config(request: Request) -> Response:
    subject = optional_path_param(request, "subject")
    to_global = flag(request, "defaultToGlobal")
    level = await call(request, SchemaRegistry.compatibility, subject, default_to_global=to_global)
    return answer({"compatibilityLevel": level.value})


@router.put(*_CONFIG)
async def put_config(request: Request) -> Response:
    body = await json_body(request)
    subject = optional_path_param(request, "subject")
    level = await call(
        request, SchemaRegistry.set_compatibility, subject, body.get("compatibility")
    )
    return answer({"compatibility": level.value})


@router.delete(*_CONFIG)
async def delete_config(request: Request) -> Response:
    subject = optional_path_param(request, "subject")
    level = await call(request, SchemaRegistry.delete_compatibility, subject)
    return answer({"compatibilityLevel": level.value})


@router.get("/mode", "/mode/{subject}")
async def get_mode(request: Request) -> Response:
    # Read-only: this registry is always READWRITE (no IMPORT / READONLY modes).
    return answer({"mode": "READWRITE"})
