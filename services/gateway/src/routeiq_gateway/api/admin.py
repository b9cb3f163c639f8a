"""The admin API (admin key required): router state, strategies, rollback and the audit trail.

Strategy changes run as one transaction in ``routeiq.routing.admin``; this module only reads
the request and writes the response.
"""

from __future__ import annotations

from routeiq.errors import RouteIQError
from routeiq.routing.admin import apply_strategy_change, parse_strategy_change
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_gateway.api.dependencies import admin_only, context, json_body, model_sync
from routeiq_gateway.api.health import router_state
from routeiq_gateway.errors import BadRequest


async def router(request: Request) -> Response:
    return JSONResponse(router_state(context(request)))


def _strategies(request: Request) -> Response:
    gateway = context(request).gateway
    return JSONResponse(
        {"strategies": gateway.registry.describe(), "config": gateway.engine.config.describe()}
    )


async def strategies(request: Request) -> Response:
    return _strategies(request)


async def change_strategies(request: Request) -> Response:
    change = parse_strategy_change(await json_body(request))
    apply_strategy_change(context(request).gateway.engine, change)
    return _strategies(request)


async def rollback(request: Request) -> Response:
    sync = model_sync(request)
    body = await json_body(request)
    version = body.get("version")
    if not isinstance(version, str) or not version:
        raise BadRequest("'version' must be a version string or \"previous\"", param="version")
    who = request.headers.get("x-routeiq-operator", "admin-api")
    reason = body.get("reason") if isinstance(body.get("reason"), str) else None
    try:
        result = await sync.rollback(version, who=who, reason=reason)
    except RouteIQError as exc:
        raise BadRequest(str(exc), code="rollback_refused") from exc
    return JSONResponse(result)


async def audit(request: Request) -> Response:
    sync = model_sync(request)
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit():
        raise BadRequest("'limit' must be a positive integer")
    return JSONResponse({"entries": sync.audit.tail(int(limit))})


routes = [
    Route("/admin/router", admin_only(router), methods=["GET"]),
    Route("/admin/strategies", admin_only(strategies), methods=["GET"]),
    Route("/admin/strategies", admin_only(change_strategies), methods=["PUT"]),
    Route("/admin/model/rollback", admin_only(rollback), methods=["POST"]),
    Route("/admin/audit", admin_only(audit), methods=["GET"]),
]
