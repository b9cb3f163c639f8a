"""HTTP layer: OpenAI-compatible endpoints, feedback, health, metrics and the admin API.

Handlers parse and validate, call ``Gateway`` / ``ModelSync``, and map ``GatewayError`` to
OpenAI-style JSON bodies in one place. Bad input is always a 4xx, never a 500.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from routeiq.errors import ConfigError, RouteIQError
from routeiq_gateway.core import Gateway
from routeiq_gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from routeiq_gateway.sync import ModelSync
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


def _error(err: GatewayError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, refusing wrong types, oversize bodies and bad JSON."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in {"application/json", ""}:
        raise UnsupportedMediaType(f"content-type must be application/json, got {ctype!r}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise BadRequest("the request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def create_app(
    gateway: Gateway,
    *,
    admin_key: str,
    max_body_bytes: int,
    sync: ModelSync | None = None,
    started_at: float | None = None,
) -> Starlette:
    boot = started_at or time.time()

    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except GatewayError as err:
                return _error(err)
            except ConfigError as err:
                return _error(BadRequest(str(err)))

        return run

    def admin(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            given = (
                auth[7:]
                if auth.lower().startswith("bearer ")
                else request.headers.get("x-routeiq-admin-key", "")
            )
            if not given:
                raise Unauthorized("admin endpoints need the admin key (Authorization: Bearer)")
            if not hmac.compare_digest(given.encode(), admin_key.encode()):
                raise Forbidden("the admin key is wrong")
            return await handler(request)

        return guarded(run)

    async def chat_completions(request: Request) -> Response:
        body = await read_json(request, max_body_bytes)
        plan = await gateway.plan(body, request.headers)
        headers = {
            "x-routeiq-decision-id": plan.decision_id,
            "x-routeiq-model": plan.group,
            "x-routeiq-router-version": plan.router_version,
            "x-routeiq-strategy": plan.decision.strategy,
        }
        if plan.stream:
            chunks = await gateway.open_stream(plan)
            return StreamingResponse(
                chunks,
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        response = await gateway.complete(plan)
        assert plan.outcome is not None
        headers["x-routeiq-model"] = plan.outcome.served_group
        return Response(
            response.model_dump_json(exclude_none=True),
            media_type="application/json",
            headers=headers,
        )

    async def models(_: Request) -> Response:
        created = int(boot)
        data = [
            {"id": a, "object": "model", "created": created, "owned_by": "routeiq"}
            for a in sorted(gateway.aliases)
        ]
        data += [
            {
                "id": g,
                "object": "model",
                "created": created,
                "owned_by": gateway.options[g].provider,
            }
            for g in gateway.groups
        ]
        return JSONResponse({"object": "list", "data": data})

    async def feedback(request: Request) -> Response:
        body = await read_json(request, max_body_bytes)
        feedback_id = gateway.feedback(body)
        return JSONResponse({"feedback_id": feedback_id, "status": "accepted"}, status_code=202)

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def router_state() -> dict[str, Any]:
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
        if sync is not None:
            state["sync"] = sync.status()
        return state

    async def ready(_: Request) -> Response:
        publisher = gateway.publisher
        body = {
            "status": "ready",
            "replica": getattr(sync, "replica_id", None),
            **router_state(),
            "kafka": {
                "enabled": gateway.telemetry_enabled,
                "producer_state": publisher.state if publisher else "disabled",
                "spool_depth": publisher.spool_depth if publisher else 0,
                "last_error": publisher.last_error if publisher else None,
            },
        }
        # Ready means "can serve": telemetry or model-sync trouble degrades, never blocks.
        return JSONResponse(body)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def admin_router(_: Request) -> Response:
        return JSONResponse(router_state())

    async def admin_strategies_get(_: Request) -> Response:
        return JSONResponse(
            {"strategies": gateway.registry.describe(), "config": gateway.engine.config.describe()}
        )

    async def admin_strategies_put(request: Request) -> Response:
        body = await read_json(request, max_body_bytes)
        allowed = {"register", "default", "ab", "domain_overrides", "epsilon"}
        unknown = set(body) - allowed
        if unknown:
            raise BadRequest(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        register = body.get("register", [])
        if not isinstance(register, list):
            raise BadRequest("'register' must be a list of {name, kind, params}")
        built = []
        for i, spec in enumerate(register):
            if (
                not isinstance(spec, dict)
                or not isinstance(spec.get("name"), str)
                or not isinstance(spec.get("kind"), str)
            ):
                raise BadRequest(f"register[{i}] needs string 'name' and 'kind'")
            params = spec.get("params", {})
            if not isinstance(params, dict):
                raise BadRequest(f"register[{i}].params must be an object")
            # Build first: nothing changes unless every new strategy is valid.
            built.append(
                (
                    spec["name"],
                    spec["kind"],
                    gateway.registry.build(spec["name"], spec["kind"], params),
                )
            )
        changes: dict[str, Any] = {}
        if "default" in body:
            changes["default"] = body["default"]
        if "ab" in body:
            if not isinstance(body["ab"], dict):
                raise BadRequest("'ab' must map strategy names to weights")
            changes["ab"] = {str(k): float(v) for k, v in body["ab"].items()}
        if "domain_overrides" in body:
            if not isinstance(body["domain_overrides"], dict):
                raise BadRequest("'domain_overrides' must map domains to strategy names")
            changes["domain_overrides"] = {
                str(k): str(v) for k, v in body["domain_overrides"].items()
            }
        if "epsilon" in body:
            changes["epsilon"] = float(body["epsilon"])
        # Validate the configuration against old + new names before touching anything.
        from dataclasses import replace

        candidate_config = replace(gateway.engine.config, **changes)
        candidate_config.validate(gateway.registry.names() + [n for n, _, _ in built])
        for name, kind, _ in built:
            spec = next(s for s in register if s["name"] == name)
            gateway.registry.register(name, kind, spec.get("params", {}))
        gateway.engine.configure(**changes)
        return JSONResponse(
            {"strategies": gateway.registry.describe(), "config": gateway.engine.config.describe()}
        )

    async def admin_rollback(request: Request) -> Response:
        if sync is None:
            raise BadRequest("model sync is not enabled on this gateway")
        body = await read_json(request, max_body_bytes)
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

    async def admin_audit(request: Request) -> Response:
        if sync is None:
            raise BadRequest("model sync is not enabled on this gateway")
        limit = request.query_params.get("limit", "100")
        if not limit.isdigit():
            raise BadRequest("'limit' must be a positive integer")
        return JSONResponse({"entries": sync.audit.tail(int(limit))})

    routes = [
        Route("/v1/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/v1/models", guarded(models), methods=["GET"]),
        Route("/v1/feedback", guarded(feedback), methods=["POST"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", guarded(ready), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/admin/router", admin(admin_router), methods=["GET"]),
        Route("/admin/strategies", admin(admin_strategies_get), methods=["GET"]),
        Route("/admin/strategies", admin(admin_strategies_put), methods=["PUT"]),
        Route("/admin/model/rollback", admin(admin_rollback), methods=["POST"]),
        Route("/admin/audit", admin(admin_audit), methods=["GET"]),
    ]

    async def not_found(_: Request, __: Exception) -> Response:
        return _error(NotFound(f"no such endpoint: {_.url.path}", code="unknown_endpoint"))

    async def bad_method(request: Request, _: Exception) -> Response:
        return JSONResponse(
            {
                "error": {
                    "message": f"method {request.method} not allowed",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "method_not_allowed",
                }
            },
            status_code=405,
        )

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: bad_method})
