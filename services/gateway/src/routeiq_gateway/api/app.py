"""HTTP layer: the app that puts the per-resource routes together and maps errors once.

Routes live by resource (``chat``, ``feedback``, ``health``, ``admin``) and are described by
``GET /openapi.json`` (``openapi``); handlers parse, call ``Gateway`` / ``ModelSync`` and
answer. ``GatewayError`` becomes an OpenAI-style JSON body
here, in one place: bad input is always a 4xx, never a 500. The app's lifespan stops what
runs on its event loop beside the requests (shadow sampling) once the server has drained them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from routeiq.errors import ConfigError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from routeiq_gateway.api import admin, chat, feedback, health
from routeiq_gateway.api.dependencies import ApiContext
from routeiq_gateway.api.openapi import openapi_route
from routeiq_gateway.budgets import Budgets
from routeiq_gateway.errors import BadRequest, GatewayError, MethodNotAllowed, NotFound
from routeiq_gateway.gateway import Gateway
from routeiq_gateway.keys import Access
from routeiq_gateway.sync import ControlPlane, ModelSync

# Every route but the document's own; ``GET /openapi.json`` describes these and itself.
ROUTES = [*chat.routes, *feedback.routes, *health.routes, *admin.routes]


def _error(err: GatewayError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


async def _gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _error(exc)


async def _config_error(_: Request, exc: Exception) -> Response:
    # A refused admin change (strategy parameters, routing configuration): the caller's to fix.
    return _error(BadRequest(str(exc)))


async def _not_found(request: Request, _: Exception) -> Response:
    return _error(NotFound(f"no such endpoint: {request.url.path}", code="unknown_endpoint"))


async def _bad_method(request: Request, _: Exception) -> Response:
    return _error(MethodNotAllowed(f"method {request.method} not allowed"))


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    # Shutdown: uvicorn has answered the last request. The shadow sampler's task lives on this
    # loop (and talks to its worker process from it), so it is drained and stopped here, before
    # the loop closes and before the composition root closes the publisher its verdicts go
    # through.
    gateway: Gateway = app.state.routeiq.gateway
    if gateway.shadow is not None:
        await gateway.shadow.aclose()
    if gateway.shadow_redis is not None:
        await gateway.shadow_redis.aclose()


def create_app(
    gateway: Gateway,
    *,
    admin_key: str,
    max_body_bytes: int,
    sync: ModelSync | None = None,
    started_at: float | None = None,
    access: Access | None = None,
    budgets: Budgets | None = None,
    control: ControlPlane | None = None,
) -> Starlette:
    """The app; without ``access`` nobody is asked for a key, without ``budgets`` no spend
    is counted (``wiring.build_access`` builds both from the settings and model file)."""
    app = Starlette(
        routes=[*ROUTES, openapi_route(ROUTES)],
        exception_handlers={
            GatewayError: _gateway_error,
            ConfigError: _config_error,
            404: _not_found,
            405: _bad_method,
        },
        lifespan=_lifespan,
    )
    app.state.routeiq = ApiContext(
        gateway=gateway,
        sync=sync,
        admin_key=admin_key,
        max_body_bytes=max_body_bytes,
        started_at=started_at or time.time(),
        access=access or Access(),
        budgets=budgets,
        control=control,
    )
    return app
