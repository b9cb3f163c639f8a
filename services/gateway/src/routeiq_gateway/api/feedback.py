"""``POST /v1/feedback``: a score for an earlier decision, published keyed by its id."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_gateway.api.dependencies import context, json_body
from routeiq_gateway.api.openapi import FeedbackAccepted, Operation, documented
from routeiq_gateway.request_models import FeedbackBody


@documented(
    Operation(
        "A score for an earlier decision, published keyed by its id.",
        ok=FeedbackAccepted,
        ok_status=202,
        body=FeedbackBody,
        errors=(404,),
    )
)
async def feedback(request: Request) -> Response:
    feedback_id = context(request).gateway.feedback(await json_body(request))
    return JSONResponse({"feedback_id": feedback_id, "status": "accepted"}, status_code=202)


routes = [Route("/v1/feedback", feedback, methods=["POST"])]
