"""``POST /v1/feedback``: a score for an earlier decision, published keyed by its id.

Where keys are configured, only the key that made the decision (or the master key) may score
it: a decision made with another key reads as not found, so ids cannot be probed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_gateway.api.dependencies import caller, context, json_body
from routeiq_gateway.api.openapi import FeedbackAccepted, Operation, documented
from routeiq_gateway.request_models import FeedbackBody, parse_feedback


@documented(
    Operation(
        "A score for an earlier decision, published keyed by its id.",
        ok=FeedbackAccepted,
        ok_status=202,
        body=FeedbackBody,
        errors=(401, 404, 503),
    )
)
async def feedback(request: Request) -> Response:
    ctx = context(request)
    who = await caller(request)
    body = await json_body(request)
    owners = ctx.access.owners
    if who is not None and owners is not None:
        gateway = ctx.gateway
        # Validated first (400 / 404 for a forged id), then whose decision it is.
        checked = parse_feedback(body, check_decision_id=gateway.ids.check, groups=gateway.groups)
        await owners.check(checked.decision_id, who)
    feedback_id = ctx.gateway.feedback(body)
    return JSONResponse({"feedback_id": feedback_id, "status": "accepted"}, status_code=202)


routes = [Route("/v1/feedback", feedback, methods=["POST"])]
