"""The OpenAI-compatible surface: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from routeiq_gateway.api.dependencies import context, json_body
from routeiq_gateway.api.openapi import ChatCompletion, ModelList, Operation, documented
from routeiq_gateway.request_models import ChatCompletionRequest

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
        errors=(404, 429, 502, 504),
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
    gateway = context(request).gateway
    plan = await gateway.plan(await json_body(request), request.headers)
    headers = {
        "x-routeiq-decision-id": plan.decision_id,
        "x-routeiq-model": plan.group,
        "x-routeiq-router-version": plan.router_version,
        "x-routeiq-strategy": plan.decision.strategy,
    }
    if plan.request.stream:
        frames = await gateway.open_stream(plan)
        return StreamingResponse(
            frames, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
        )
    served = await gateway.complete(plan)
    headers["x-routeiq-model"] = served.outcome.served_group  # after any fallback
    return Response(
        served.response.model_dump_json(exclude_none=True),
        media_type="application/json",
        headers=headers,
    )


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
