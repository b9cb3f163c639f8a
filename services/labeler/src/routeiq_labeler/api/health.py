"""``/health/live``, ``/health/ready`` and ``/metrics`` on the Faust web server.

Faust starts its web server before the consumer, so liveness answers while tables recover;
readiness turns 200 only once partitions are assigned and every table is recovered.
"""

from __future__ import annotations

from typing import Any, Protocol

import faust
from routeiq.metrics import CONTENT_TYPE, MetricSet


class Status(Protocol):
    @property
    def ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


def register_pages(app: faust.App, *, status: Status, metrics: MetricSet) -> None:
    """Add the health and metrics pages to ``app``'s web server."""

    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/health/ready")
    async def ready(web: Any, request: Any) -> Any:
        body = status.status()
        return web.json(body, status=200 if body["ready"] else 503)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=, so the header is set whole.
        return web.bytes(metrics.render(), headers={"Content-Type": CONTENT_TYPE})
