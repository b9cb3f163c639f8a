"""The admin API (admin key required): router state, strategies, rollback and the audit trail.

Bodies are checked against the models below, built on ``request_models`` (one 400 naming the field);
strategy changes then run as one transaction in ``routeiq.routing.admin``; this module only
reads the request and writes the response.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from routeiq.errors import RouteIQError
from routeiq.routing.admin import apply_strategy_change, parse_strategy_change
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_gateway.api.dependencies import admin_only, context, json_body, model_sync
from routeiq_gateway.api.health import router_state
from routeiq_gateway.api.openapi import Operation, documented
from routeiq_gateway.errors import BadRequest
from routeiq_gateway.request_models import Bounded, Closed, Model, parse


class StrategySpecBody(Closed):
    name: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class StrategyChangeBody(Closed):
    """``PUT /admin/strategies``: strategies to register and the routing fields to change,
    applied all or nothing."""

    # Aliased: ``register`` is also a method every pydantic model inherits (ABC's).
    register_: list[StrategySpecBody] = Field(default_factory=list, alias="register")
    default: str | None = None
    ab: dict[str, Annotated[float, Bounded(0)]] | None = None
    domain_overrides: dict[str, str] | None = None
    epsilon: Annotated[float, Bounded(0, 1)] | None = None


class RollbackBody(Model):
    """``POST /admin/model/rollback``."""

    version: str = Field(min_length=1, description='a router version, or "previous"')
    reason: str | None = None


class AuditQuery(BaseModel):
    """``GET /admin/audit``'s query (strings from the URL, so not strict)."""

    model_config = ConfigDict(extra="allow")

    limit: int = Field(default=100, ge=1, le=10_000)


@documented(Operation("The routing configuration, the active router and model sync's state."))
async def router(request: Request) -> Response:
    return JSONResponse(router_state(context(request)))


def _strategies(request: Request) -> Response:
    gateway = context(request).gateway
    return JSONResponse(
        {"strategies": gateway.registry.describe(), "config": gateway.engine.config.describe()}
    )


@documented(Operation("The registered strategies and the routing configuration."))
async def strategies(request: Request) -> Response:
    return _strategies(request)


@documented(
    Operation("Register strategies and re-split traffic, all or nothing.", body=StrategyChangeBody)
)
async def change_strategies(request: Request) -> Response:
    body = await json_body(request)
    parse(StrategyChangeBody, body)
    apply_strategy_change(context(request).gateway.engine, parse_strategy_change(body))
    return _strategies(request)


@documented(Operation("Roll the learned router back to an earlier version.", body=RollbackBody))
async def rollback(request: Request) -> Response:
    body = parse(RollbackBody, await json_body(request))
    sync = model_sync(request)
    who = request.headers.get("x-routeiq-operator", "admin-api")
    try:
        result = await sync.rollback(body.version, who=who, reason=body.reason)
    except RouteIQError as exc:
        raise BadRequest(str(exc), code="rollback_refused") from exc
    return JSONResponse(result)


@documented(Operation("The newest entries of the model audit trail.", query=AuditQuery))
async def audit(request: Request) -> Response:
    query = parse(AuditQuery, dict(request.query_params))
    return JSONResponse({"entries": model_sync(request).audit.tail(query.limit)})


routes = [
    Route("/admin/router", admin_only(router), methods=["GET"]),
    Route("/admin/strategies", admin_only(strategies), methods=["GET"]),
    Route("/admin/strategies", admin_only(change_strategies), methods=["PUT"]),
    Route("/admin/model/rollback", admin_only(rollback), methods=["POST"]),
    Route("/admin/audit", admin_only(audit), methods=["GET"]),
]
