"""Every failure as Confluent's ``{"error_code": N, "message": ...}``, through the one table in
``routeiq_schema_registry.errors``: the registry's own errors, Starlette's 404 / 405 for paths
and methods it does not serve, and anything unexpected (50001, logged with its traceback)."""

from __future__ import annotations

import logging

from routeiq.errors import RouteIQError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from routeiq_schema_registry.api.protocol import answer
from routeiq_schema_registry.errors import ROUTING_ERRORS, confluent_error

logger = logging.getLogger(__name__)


async def on_registry_error(request: Request, exc: Exception) -> Response:
    status, code = confluent_error(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return answer({"error_code": code, "message": str(exc)}, status)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code not in ROUTING_ERRORS:
        return answer({"error_code": exc.status_code, "message": exc.detail}, exc.status_code)
    error, message = ROUTING_ERRORS[exc.status_code]
    text = message.format(method=request.method, path=request.url.path)
    response = await on_registry_error(request, error(text))
    response.headers.update(exc.headers or {})
    return response


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("%s %s: unexpected error", request.method, request.url.path)
    return answer({"error_code": 50001, "message": f"Internal error: {type(exc).__name__}"}, 500)


EXCEPTION_HANDLERS = {
    RouteIQError: on_registry_error,
    HTTPException: on_http_error,
    Exception: on_unexpected_error,
}
