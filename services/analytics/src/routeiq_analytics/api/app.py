"""Starlette app: ``/api/summary``, ``/api/timeseries``, ``/`` (dashboard), health, metrics.

Handlers parse the query, call the aggregator in the thread pool (it takes a lock the consumer
thread also takes) and render. Errors become ``{"error": {"type", "message"}}`` with the status
from ``routeiq_analytics.errors.HTTP_STATUS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from routeiq.errors import RouteIQError
from routeiq.metrics import CONTENT_TYPE, MetricSet
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from routeiq_analytics.api import dashboard
from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.core.durations import format_duration, parse_duration
from routeiq_analytics.core.timeseries import TIMESERIES_METRICS
from routeiq_analytics.errors import InvalidQueryError, http_status

MAX_POINTS = 1000


class Readiness(Protocol):
    """What the API needs to know about the consumer loop."""

    @property
    def ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


class _Config:
    def __init__(
        self,
        *,
        windows: Sequence[int],
        retention_s: int,
        bucket_s: int,
        points: int,
        refresh_s: int,
    ) -> None:
        self.windows = list(windows)
        self.default = max(windows)
        self.retention_s = retention_s
        self.bucket_s = bucket_s
        self.points = points
        self.refresh_s = refresh_s


def create_app(
    *,
    aggregator: Aggregator,
    readiness: Readiness,
    metrics: MetricSet,
    windows: Sequence[int],
    retention_s: int,
    timeseries_points: int = 30,
    refresh_s: int = 10,
) -> Starlette:
    """The HTTP app over an aggregator and the consumer's readiness."""
    config = _Config(
        windows=windows,
        retention_s=retention_s,
        bucket_s=aggregator.bucket_s,
        points=timeseries_points,
        refresh_s=refresh_s,
    )

    def window_of(request: Request) -> int:
        text = request.query_params.get("window")
        if text is None:
            return config.default
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise InvalidQueryError(f"window: {exc}") from exc
        if seconds > config.retention_s:
            raise InvalidQueryError(
                f"window: {text} is longer than the retention "
                f"({format_duration(config.retention_s)}); configured windows: "
                f"{', '.join(format_duration(w) for w in config.windows)}"
            )
        if seconds < config.bucket_s:
            raise InvalidQueryError(
                f"window: {text} is shorter than one bucket ({config.bucket_s}s)"
            )
        return seconds

    def points_of(request: Request) -> int:
        text = request.query_params.get("points")
        if text is None:
            return config.points
        if not text.isdigit() or not 1 <= int(text) <= MAX_POINTS:
            raise InvalidQueryError(
                f"points: expected a whole number 1..{MAX_POINTS}, got {text!r}"
            )
        return int(text)

    async def summary(request: Request) -> Response:
        window_s = window_of(request)
        return JSONResponse(await run_in_threadpool(aggregator.summary, window_s))

    async def timeseries(request: Request) -> Response:
        window_s = window_of(request)
        points = points_of(request)
        wanted = [m for m in request.query_params.get("metric", "").split(",") if m]
        unknown = [m for m in wanted if m not in TIMESERIES_METRICS]
        if unknown:
            raise InvalidQueryError(
                f"metric: unknown {unknown}; known: {', '.join(TIMESERIES_METRICS)}"
            )
        data = await run_in_threadpool(aggregator.timeseries, window_s, points)
        if wanted:
            keep = {"window_s", "from", "to", "step_s", "t", *wanted}
            data = {k: v for k, v in data.items() if k in keep}
        return JSONResponse(data)

    async def page(request: Request) -> Response:
        window_s = window_of(request)

        def build() -> str:
            return dashboard.render(
                aggregator.summary(window_s),
                aggregator.timeseries(window_s, config.points),
                windows=config.windows,
                window_s=window_s,
                refresh_s=config.refresh_s,
                ready=readiness.ready,
            )

        return HTMLResponse(await run_in_threadpool(build))

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        status = readiness.status()
        if readiness.ready:
            # Kafka or the registry lost: still ready (the windows held are served) but said.
            lost = [n for n, d in status.get("dependencies", {}).items() if not d["up"]]
            return JSONResponse({"status": "degraded" if lost else "ready", **status})
        state = "failed" if status.get("failure") else "starting"
        return JSONResponse({"status": state, **status}, status_code=503)

    async def metrics_text(_: Request) -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    async def routeiq_error(_: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"error": {"type": type(exc).__name__, "message": str(exc)}},
            status_code=http_status(exc),
        )

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/summary", summary, methods=["GET"]),
            Route("/api/timeseries", timeseries, methods=["GET"]),
            Route("/health/live", live, methods=["GET"]),
            Route("/health/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
        ],
        exception_handlers={RouteIQError: routeiq_error},
    )
