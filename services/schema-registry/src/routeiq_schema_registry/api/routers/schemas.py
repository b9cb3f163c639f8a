"""``/schemas``: schemas by id, where an id is registered, and the supported types."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routeiq_schema_registry.api.protocol import (
    ResourceRouter,
    answer,
    call,
    flag,
    page,
    raw_schema,
    schema_id,
)
from routeiq_schema_registry.core.registry import SchemaRegistry
from routeiq_schema_registry.core.state import SchemaVersion

router = ResourceRouter()


@router.get("/schemas/ids/{id}")
async def get_schema_by_id(request: Request) -> Response:
    # ?subject= and ?format= (sent by confluent-kafka's client) do not change an Avro answer.
    return answer({"schema": await call(request, SchemaRegistry.schema_by_id, schema_id(request))})


@router.get("/schemas/ids/{id}/schema")
async def get_raw_schema_by_id(request: Request) -> Response:
    return raw_schema(await call(request, SchemaRegistry.schema_by_id, schema_id(request)))


async def _holders(request: Request) -> list[SchemaVersion]:
    """The versions carrying the id, narrowed to ``?subject=`` when given."""
    deleted = flag(request, "deleted")
    holders = await call(
        request, SchemaRegistry.versions_of_id, schema_id(request), deleted=deleted
    )
    subject = request.query_params.get("subject")
    return [sv for sv in holders if not subject or sv.subject == subject]


@router.get("/schemas/ids/{id}/versions")
async def get_versions_of_id(request: Request) -> Response:
    pairs = [{"subject": sv.subject, "version": sv.version} for sv in await _holders(request)]
    return answer(page(pairs, request))


@router.get("/schemas/ids/{id}/subjects")
async def get_subjects_of_id(request: Request) -> Response:
    subjects = sorted({sv.subject for sv in await _holders(request)})
    return answer(page(subjects, request))


@router.get("/schemas/types")
async def get_schema_types(request: Request) -> Response:
    return answer(["AVRO"])
