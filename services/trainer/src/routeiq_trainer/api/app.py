"""``/health/live``, ``/health/ready`` and ``/metrics``: no logic here, only reporting."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_trainer.metrics import CONTENT_TYPE, TrainerMetrics
from routeiq_trainer.worker import WorkerState


def create_app(*, state: WorkerState, metrics: TrainerMetrics, device: str) -> Starlette:
    """The trainer's small HTTP app over the worker's state and metrics."""

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(_: Request) -> Response:
        body = {
            "status": "ready" if state.started and not state.stopping else "not ready",
            "busy": state.current,
            "partitions": state.partitions,
            "processed": state.processed,
            "failed": state.failed,
            "device": device,
            "last_poll_age_s": (
                round(time.monotonic() - state.last_poll, 1) if state.last_poll else None
            ),
        }
        if state.error:
            body["error"] = state.error
        ok = state.started and not state.stopping and state.error is None
        return JSONResponse(body, status_code=200 if ok else 503)

    async def prometheus(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/metrics", prometheus),
        ]
    )
