"""The registry as a whole: root, health probes and schema contexts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routeiq_schema_registry.api.protocol import ResourceRouter, answer
from routeiq_schema_registry.core.registry import SchemaRegistry

router = ResourceRouter()


@router.get("/")
async def root(request: Request) -> Response:
    return answer({})


@router.get("/health/live")
async def health_live(request: Request) -> Response:
    return answer({"status": "live"})


@router.get("/health/ready")
async def health_ready(request: Request) -> Response:
    # Ready once replayed: reads are served from memory even while Kafka is away, so a lost
    # Kafka shows under "dependencies" (and writes answer 50001) instead of turning this 503.
    registry: SchemaRegistry = request.app.state.registry
    progress = registry.progress()
    return answer(progress, 200 if progress["ready"] else 503)


@router.get("/contexts")
async def get_contexts(request: Request) -> Response:
    # Confluent's schema contexts are not supported: everything lives in the default one.
    return answer(["."])
