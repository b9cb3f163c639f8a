"""The admin API (admin key required): router state, strategies and the fleet's routing
configuration (change, roll back, history), model rollback, the audit trail, virtual keys and
team spend against budget.

Bodies are checked against the models below, built on ``request_models`` (one 400 naming the field);
strategy changes then run as one transaction in ``routeiq.routing.admin``; this module only
reads the request and writes the response.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from routeiq.errors import RouteIQError
from routeiq.routing.admin import apply_strategy_change, parse_strategy_change
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_gateway.api.dependencies import admin_only, context, json_body, model_sync
from routeiq_gateway.api.health import router_state
from routeiq_gateway.api.openapi import Operation, documented
from routeiq_gateway.errors import BadRequest, NotFound
from routeiq_gateway.keys import KeyStore
from routeiq_gateway.request_models import Bounded, Closed, Model, parse
from routeiq_gateway.sync import ControlPlane


class StrategySpecBody(Closed):
    name: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class RolloutBody(Closed):
    """Who a rolled-out strategy serves: enabled teams and domains, then a sticky share."""

    strategy: str = Field(min_length=1)
    percent: Annotated[float, Bounded(0, 100)] = 0.0
    teams: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    monitoring_only: bool = False


class StrategyChangeBody(Closed):
    """``PUT /admin/strategies``: strategies to register and the routing fields to change,
    applied all or nothing."""

    # Aliased: ``register`` is also a method every pydantic model inherits (ABC's).
    register_: list[StrategySpecBody] = Field(default_factory=list, alias="register")
    default: str | None = None
    ab: dict[str, Annotated[float, Bounded(0)]] | None = None
    domain_overrides: dict[str, str] | None = None
    epsilon: Annotated[float, Bounded(0, 1)] | None = None
    # null ends the rollout; an object replaces it.
    rollout: RolloutBody | None = None
    kill_switch: bool | None = None
    # Why, for the control topic's audit trail (not part of the configuration).
    reason: str | None = Field(default=None, max_length=1000)


class RollbackBody(Model):
    """``POST /admin/model/rollback``."""

    version: str = Field(min_length=1, description='a router version, or "previous"')
    reason: str | None = None


class AuditQuery(BaseModel):
    """``GET /admin/audit``'s query (strings from the URL, so not strict)."""

    model_config = ConfigDict(extra="allow")

    limit: int = Field(default=100, ge=1, le=10_000)


class ConfigRollbackBody(Closed):
    """``POST /admin/config/rollback``: the fleet's configuration back to an earlier version."""

    version: Annotated[int, Bounded(0)] | Literal["previous"]
    reason: str | None = Field(default=None, max_length=1000)


@documented(Operation("The routing configuration, the active router and model sync's state."))
async def router(request: Request) -> Response:
    return JSONResponse(router_state(context(request)))


def _strategies(request: Request, **extra: Any) -> Response:
    gateway = context(request).gateway
    engine = gateway.engine
    return JSONResponse(
        {"strategies": engine.registry.describe(), "config": engine.config.describe(), **extra}
    )


def _operator(request: Request) -> str:
    return request.headers.get("x-routeiq-operator", "admin-api")[:200]


def _control(request: Request) -> ControlPlane:
    control = context(request).control
    if control is None:
        raise BadRequest("this gateway has no control topic (ROUTEIQ_GATEWAY_CONTROL_ENABLED)")
    return control


@documented(Operation("The registered strategies and the routing configuration."))
async def strategies(request: Request) -> Response:
    return _strategies(request)


@documented(
    Operation("Register strategies and re-split traffic, all or nothing.", body=StrategyChangeBody)
)
async def change_strategies(request: Request) -> Response:
    body = await json_body(request)
    reason = parse(StrategyChangeBody, body).reason
    change = {k: v for k, v in body.items() if k != "reason"}
    control = context(request).control
    if control is None:  # this replica alone
        apply_strategy_change(context(request).gateway.engine, parse_strategy_change(change))
        return _strategies(request)
    # The fleet's next version: validated, written to Kafka and read back (blocking I/O).
    write = partial(control.change, change, author=_operator(request), reason=reason)
    return _strategies(request, control=await anyio.to_thread.run_sync(write))


@documented(
    Operation(
        "Roll the fleet's routing configuration back to an earlier version.",
        body=ConfigRollbackBody,
        errors=(400, 503),
    )
)
async def config_rollback(request: Request) -> Response:
    body = parse(ConfigRollbackBody, await json_body(request))
    control = _control(request)
    write = partial(control.rollback, body.version, author=_operator(request), reason=body.reason)
    return _strategies(request, control=await anyio.to_thread.run_sync(write))


@documented(
    Operation("The fleet's configuration versions, newest last.", query=AuditQuery, errors=(503,))
)
async def config_history(request: Request) -> Response:
    query = parse(AuditQuery, dict(request.query_params))
    read = partial(_control(request).history, limit=query.limit)
    entries = await anyio.to_thread.run_sync(read)
    return JSONResponse({"versions": [entry.describe() for entry in entries]})


@documented(Operation("Roll the learned router back to an earlier version.", body=RollbackBody))
async def rollback(request: Request) -> Response:
    body = parse(RollbackBody, await json_body(request))
    sync = model_sync(request)
    try:
        result = await sync.rollback(body.version, who=_operator(request), reason=body.reason)
    except RouteIQError as exc:
        raise BadRequest(str(exc), code="rollback_refused") from exc
    return JSONResponse(result)


@documented(Operation("The newest entries of the model audit trail.", query=AuditQuery))
async def audit(request: Request) -> Response:
    query = parse(AuditQuery, dict(request.query_params))
    return JSONResponse({"entries": model_sync(request).audit.tail(query.limit)})


# Team and user names as they appear in events and Redis keys: no separators, no spaces.
_NAME = r"^[A-Za-z0-9._@-]{1,128}$"


class KeyCreateBody(Closed):
    """``POST /admin/keys``: a virtual key for a team (and optionally one of its users)."""

    team: str = Field(pattern=_NAME)
    user: str | None = Field(default=None, pattern=_NAME)
    alias: str | None = Field(default=None, max_length=128)


class KeysQuery(BaseModel):
    """``GET /admin/keys``'s query."""

    model_config = ConfigDict(extra="allow")

    team: str | None = None


def _store(request: Request) -> KeyStore:
    store = context(request).access.store
    if store is None:
        raise BadRequest("virtual keys are not enabled here (ROUTEIQ_GATEWAY_VIRTUAL_KEYS)")
    return store


@documented(
    Operation(
        "Create a virtual key for a team; the key is in this answer only.",
        ok_status=201,
        body=KeyCreateBody,
        errors=(503,),
    )
)
async def create_key(request: Request) -> Response:
    body = parse(KeyCreateBody, await json_body(request))
    key, record = await _store(request).create(team=body.team, user=body.user, alias=body.alias)
    return JSONResponse({"key": key, **record}, status_code=201)


@documented(
    Operation("The virtual keys (ids and teams, never the keys).", query=KeysQuery, errors=(503,))
)
async def list_keys(request: Request) -> Response:
    query = parse(KeysQuery, dict(request.query_params))
    return JSONResponse({"keys": await _store(request).list(team=query.team)})


@documented(Operation("Revoke a virtual key by its id.", errors=(400, 404, 503)))
async def revoke_key(request: Request) -> Response:
    key_id = str(request.path_params["key_id"])
    record = await _store(request).revoke(key_id)
    if record is None:
        raise NotFound(f"no key with id {key_id!r}", param="key_id", code="key_not_found")
    return JSONResponse({"revoked": record})


@documented(Operation("Each team's spend today and this month against its budget.", errors=(503,)))
async def budgets(request: Request) -> Response:
    ctx = context(request)
    ledger = ctx.budgets
    if ledger is None:
        return JSONResponse({"enabled": False, "teams": []})
    store = ctx.access.store
    known = [r["team"] for r in await store.list()] if store is not None else []
    teams = [await ledger.state(t) for t in await ledger.teams(known)]
    return JSONResponse({"enabled": True, "teams": [t.describe() for t in teams]})


routes = [
    Route("/admin/router", admin_only(router), methods=["GET"]),
    Route("/admin/strategies", admin_only(strategies), methods=["GET"]),
    Route("/admin/strategies", admin_only(change_strategies), methods=["PUT"]),
    Route("/admin/config/rollback", admin_only(config_rollback), methods=["POST"]),
    Route("/admin/config/history", admin_only(config_history), methods=["GET"]),
    Route("/admin/model/rollback", admin_only(rollback), methods=["POST"]),
    Route("/admin/audit", admin_only(audit), methods=["GET"]),
    Route("/admin/keys", admin_only(create_key), methods=["POST"]),
    Route("/admin/keys", admin_only(list_keys), methods=["GET"]),
    Route("/admin/keys/{key_id}", admin_only(revoke_key), methods=["DELETE"]),
    Route("/admin/budgets", admin_only(budgets), methods=["GET"]),
]
