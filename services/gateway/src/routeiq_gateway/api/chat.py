"""The OpenAI-compatible surface: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Where keys are configured a completion needs one (its team and user win over the request's);
a team at its hard budget is refused before any routing work, one over its soft limit is
downgraded, and what a served request cost is added to its team's spend.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from routeiq_gateway.api.dependencies import (
    ApiContext,
    caller,
    context,
    identity_headers,
    json_body,
)
from routeiq_gateway.api.openapi import ChatCompletion, ModelList, Operation, documented
from routeiq_gateway.budgets import over_soft_budget
from routeiq_gateway.request_models import ChatCompletionRequest
from routeiq_gateway.routing import Plan

# One schema per server-sent event (how schemathesis and OpenAPI 3.2's itemSchema read SSE):
# ``data`` is a chat.completion.chunk as JSON, then the literal ``[DONE]``.
_SSE = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
            "required": ["data"],
        }
    }
}


@documented(
    Operation(
        "A chat completion, routed to a model group (streamed as SSE when `stream` is true).",
        ok=ChatCompletion,
        body=ChatCompletionRequest,
        errors=(401, 404, 429, 502, 503, 504),
        media=_SSE,
        headers={
            "x-routeiq-decision-id": "The decision's id: what POST /v1/feedback scores.",
            "x-routeiq-model": "The model group that served (after any fallback).",
            "x-routeiq-router-version": 'The learned router\'s version, or "none".',
            "x-routeiq-strategy": 'The strategy that decided ("direct": named by the client).',
        },
    )
)
async def chat_completions(request: Request) -> Response:
    ctx = context(request)
    gateway = ctx.gateway
    who = await caller(request)
    headers_in = identity_headers(request.headers, who)
    team = headers_in.get("x-routeiq-team") or None
    budgets = ctx.budgets
    state = await budgets.admit(team) if budgets is not None else None
    plan = over_soft_budget(await gateway.plan(await json_body(request), headers_in), state)
    if who is not None and ctx.access.owners is not None:
        await ctx.access.owners.remember(plan.decision_id, who)
    headers = {
        "x-routeiq-decision-id": plan.decision_id,
        "x-routeiq-model": plan.group,
        "x-routeiq-router-version": plan.router_version,
        "x-routeiq-strategy": plan.decision.strategy,
    }
    if plan.request.stream:
        frames = await gateway.open_stream(plan)
        if team is not None and budgets is not None:
            frames = _metered(ctx, plan, team, frames)
        return StreamingResponse(
            frames, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
        )
    served = await gateway.complete(plan)
    headers["x-routeiq-model"] = served.outcome.served_group  # after any fallback
    if team is not None and budgets is not None:
        # The number the decision event carries: the spend matches the events' sum.
        await budgets.add(team, served.outcome.cost_usd or 0.0)
    return Response(
        served.response.model_dump_json(exclude_none=True),
        media_type="application/json",
        headers=headers,
    )


async def _metered(
    ctx: ApiContext, plan: Plan, team: str, frames: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """``frames`` passed through; at the end the stream's cost (its last chunk's usage, which
    the gateway always asks for, at the planned group's prices) joins the team's spend."""
    usage: dict[str, int] = {}
    try:
        async for frame in frames:
            if b'"usage"' in frame and frame.startswith(b"data: {"):
                found = json.loads(frame[6:]).get("usage") or {}
                usage = {k: int(found.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}
            yield frame
    finally:
        cost = ctx.gateway.upstream.cost(
            plan.group, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        )
        assert ctx.budgets is not None
        await ctx.budgets.add(team, cost or 0.0)


@documented(Operation("The routing aliases and model groups served here.", ok=ModelList))
async def models(request: Request) -> Response:
    ctx = context(request)
    gateway, created = ctx.gateway, int(ctx.started_at)
    data = [
        {"id": a, "object": "model", "created": created, "owned_by": "routeiq"}
        for a in sorted(gateway.aliases)
    ]
    data += [
        {"id": g, "object": "model", "created": created, "owned_by": gateway.options[g].provider}
        for g in gateway.groups
    ]
    return JSONResponse({"object": "list", "data": data})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
