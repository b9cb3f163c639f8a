"""``/config`` (compatibility levels) and ``/mode`` (READWRITE, READONLY, IMPORT), global or
per subject: the same three verbs over two settings of ``core.subject_settings``."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

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
_MODE = ("/mode", "/mode/{subject}")


async def _get(request: Request, operation: Callable[..., Enum], name: str) -> Response:
    subject = optional_path_param(request, "subject")
    to_global = flag(request, "defaultToGlobal")
    value = await call(request, operation, subject, default_to_global=to_global)
    return answer({name: value.value})


async def _put(
    request: Request,
    operation: Callable[..., Enum],
    value_in: Callable[[dict[str, Any]], object],
    name: str,
    **options: Any,
) -> Response:
    """Set a subject's (or the global) setting to the value the body holds; answer it."""
    body = await json_body(request)
    subject = optional_path_param(request, "subject")
    value = await call(request, operation, subject, value_in(body), **options)
    return answer({name: value.value})


async def _delete(request: Request, operation: Callable[..., Enum], name: str) -> Response:
    """Remove a subject's (or the global) setting; answer the one that applied before."""
    value = await call(request, operation, optional_path_param(request, "subject"))
    return answer({name: value.value})


@router.get(*_CONFIG)
async def get_config(request: Request) -> Response:
    return await _get(request, SchemaRegistry.compatibility, "compatibilityLevel")


def _level_in(body: dict[str, Any]) -> object:
    # Confluent's clients send "compatibility" or, in newer versions, "compatibilityLevel".
    return body.get("compatibility", body.get("compatibilityLevel"))


@router.put(*_CONFIG)
async def put_config(request: Request) -> Response:
    return await _put(request, SchemaRegistry.set_compatibility, _level_in, "compatibility")


@router.delete(*_CONFIG)
async def delete_config(request: Request) -> Response:
    return await _delete(request, SchemaRegistry.delete_compatibility, "compatibilityLevel")


@router.get(*_MODE)
async def get_mode(request: Request) -> Response:
    return await _get(request, SchemaRegistry.mode, "mode")


def _mode_in(body: dict[str, Any]) -> object:
    return body.get("mode")


@router.put(*_MODE)
async def put_mode(request: Request) -> Response:
    force = flag(request, "force")
    return await _put(request, SchemaRegistry.set_mode, _mode_in, "mode", force=force)


# Confluent has no DELETE /mode: the global mode is set back with PUT.
@router.delete("/mode/{subject}")
async def delete_mode(request: Request) -> Response:
    return await _delete(request, SchemaRegistry.delete_mode, "mode")
