"""``/compatibility``: would a schema be accepted next to a subject's versions?"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from routeiq_schema_registry.api.protocol import (
    ResourceRouter,
    answer,
    call,
    flag,
    optional_path_param,
    path_param,
    schema_request,
)
from routeiq_schema_registry.core.registry import SchemaRegistry

router = ResourceRouter()
_VERSIONS = "/compatibility/subjects/{subject}/versions"


@router.post(_VERSIONS + "/{version}", _VERSIONS)
async def test_compatibility(request: Request) -> Response:
    body, subject = await schema_request(request), path_param(request, "subject")
    version = optional_path_param(request, "version")
    normalize = flag(request, "normalize")
    messages = await call(
        request, SchemaRegistry.test_compatibility, subject, body, version, normalize=normalize
    )
    result: dict[str, Any] = {"is_compatible": not messages}
    if flag(request, "verbose"):
        result["messages"] = messages
    return answer(result)
