"""``/health/live``, ``/health/ready`` and ``/metrics``: no logic here, only reporting.

Readiness: 503 until the worker consumes, while it stops, and after it stopped on an error.
A lost dependency (Kafka, S3, MLflow, the registry) does not make the trainer unready: it
serves no traffic a balancer could send elsewhere, and it resumes on its own when the
dependency is back; the body then says ``"degraded"`` and names the dependency, how long it
has been down and its last error.
"""

from __future__ import annotations

import time
from typing import Any

from routeiq.dependencies import Dependencies
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routeiq_trainer.core.state import WorkerState
from routeiq_trainer.metrics import CONTENT_TYPE, TrainerMetrics


def create_app(
    *, state: WorkerState, metrics: TrainerMetrics, dependencies: Dependencies, device: str
) -> Starlette:
    """The trainer's small HTTP app over the worker's state, dependencies and metrics."""

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(_: Request) -> Response:
        ok = state.started and not state.stopping and state.error is None
        status = "not ready"
        if ok:
            status = "ready" if dependencies.ready else "degraded"
        body: dict[str, Any] = {
            "status": status,
            "busy": state.current,
            "partitions": state.partitions,
            "processed": state.processed,
            "failed": state.failed,
            "device": device,
            "last_poll_age_s": (
                round(time.monotonic() - state.last_poll, 1) if state.last_poll else None
            ),
            "dependencies": dependencies.states(),
        }
        if state.error:
            body["error"] = state.error
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
