"""Liveness, readiness and Prometheus metrics.

Ready means "can serve": telemetry or model-sync trouble shows in the body but never makes
the gateway unready (the default strategy serves and events spool to disk). A lost
dependency turns ``status`` to ``degraded`` and is named under ``dependencies`` with how long
it has been down and its last error; the answer stays 200.
"""

from __future__ import annotations

from typing import Any

from routeiq.metrics import CONTENT_TYPE
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_gateway.api.dependencies import ApiContext, context


def router_state(ctx: ApiContext) -> dict[str, Any]:
    """The routing configuration, the active learned router and model sync's status."""
    gateway = ctx.gateway
    bundle = gateway.holder.get()
    state: dict[str, Any] = {
        "default_strategy": gateway.engine.config.default,
        "routing": gateway.engine.config.describe(),
        "router": None,
    }
    if bundle is not None:
        m = bundle.manifest
        state["router"] = {
            "name": m.name,
            "version": m.version,
            "router_type": m.router_type,
            "loaded_at": gateway.holder.loaded_at,
            "candidates": list(m.models),
            "metrics": m.metrics,
        }
    if ctx.sync is not None:
        state["sync"] = ctx.sync.status()
    if ctx.control is not None:
        state["control"] = ctx.control.status()
    return state


async def live(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    ctx = context(request)
    publisher = ctx.gateway.publisher
    dependencies = ctx.gateway.metrics.dependencies
    return JSONResponse(
        {
            "status": "ready" if dependencies.ready else "degraded",
            "replica": ctx.sync.replica_id if ctx.sync is not None else None,
            **router_state(ctx),
            "kafka": {
                "enabled": ctx.gateway.telemetry_enabled,
                "producer_state": publisher.state if publisher else "disabled",
                "spool_depth": publisher.spool_depth if publisher else 0,
                "last_error": publisher.last_error if publisher else None,
            },
            "dependencies": dependencies.states(),
        }
    )


async def metrics(request: Request) -> Response:
    return Response(context(request).gateway.metrics.render(), media_type=CONTENT_TYPE)


routes = [
    Route("/health/live", live, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
