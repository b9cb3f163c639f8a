"""``/subjects``: subjects, their versions, registering and looking up schemas."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routeiq_schema_registry.api.protocol import (
    ResourceRouter,
    answer,
    call,
    flag,
    page,
    path_param,
    raw_schema,
    schema_request,
    version_json,
)
from routeiq_schema_registry.core.registry import SchemaRegistry
from routeiq_schema_registry.core.state import SchemaVersion

router = ResourceRouter()
_SUBJECT = "/subjects/{subject}"
_VERSION = _SUBJECT + "/versions/{version}"

# Confluent's way of saying "every subject, all contexts" in GET /subjects?subjectPrefix=.
_ALL_SUBJECTS_PREFIX = ":*:"


@router.get("/subjects")
async def list_subjects(request: Request) -> Response:
    prefix = request.query_params.get("subjectPrefix") or request.query_params.get("subject")
    deleted, deleted_only = flag(request, "deleted"), flag(request, "deleted_only")
    subjects = await call(
        request, SchemaRegistry.subjects, deleted=deleted, deleted_only=deleted_only
    )
    if prefix and prefix != _ALL_SUBJECTS_PREFIX:
        subjects = [s for s in subjects if s.startswith(prefix)]
    return answer(page(subjects, request))


@router.post(_SUBJECT)
async def lookup_schema(request: Request) -> Response:
    body, subject = await schema_request(request), path_param(request, "subject")
    normalize, deleted = flag(request, "normalize"), flag(request, "deleted")
    sv = await call(
        request, SchemaRegistry.lookup, subject, body, normalize=normalize, deleted=deleted
    )
    return answer(version_json(sv))


@router.delete(_SUBJECT)
async def delete_subject(request: Request) -> Response:
    subject = path_param(request, "subject")
    permanent = flag(request, "permanent")
    return answer(await call(request, SchemaRegistry.delete_subject, subject, permanent=permanent))


@router.get(_SUBJECT + "/versions")
async def list_versions(request: Request) -> Response:
    subject = path_param(request, "subject")
    deleted, deleted_only = flag(request, "deleted"), flag(request, "deleted_only")
    versions = await call(
        request, SchemaRegistry.versions, subject, deleted=deleted, deleted_only=deleted_only
    )
    return answer(page(versions, request))


@router.post(_SUBJECT + "/versions")
async def register_schema(request: Request) -> Response:
    body, subject = await schema_request(request), path_param(request, "subject")
    normalize = flag(request, "normalize")
    sv = await call(request, SchemaRegistry.register, subject, body, normalize=normalize)
    # No "schema" in the answer: confluent-kafka's client then caches the id under the schema
    # object it sent, so the next register of the same object needs no request.
    return answer({"id": sv.schema_id, "version": sv.version})


async def _requested_version(request: Request) -> SchemaVersion:
    subject, version = path_param(request, "subject"), path_param(request, "version")
    deleted = flag(request, "deleted")
    return await call(request, SchemaRegistry.version, subject, version, deleted=deleted)


@router.get(_VERSION)
async def get_version(request: Request) -> Response:
    return answer(version_json(await _requested_version(request)))


@router.get(_VERSION + "/schema")
async def get_version_schema(request: Request) -> Response:
    return raw_schema((await _requested_version(request)).schema)


@router.get(_VERSION + "/referencedby")
async def get_referenced_by(request: Request) -> Response:
    subject, version = path_param(request, "subject"), path_param(request, "version")
    return answer(await call(request, SchemaRegistry.referenced_by, subject, version))


@router.delete(_VERSION)
async def delete_version(request: Request) -> Response:
    subject, version = path_param(request, "subject"), path_param(request, "version")
    permanent = flag(request, "permanent")
    deleted = await call(
        request, SchemaRegistry.delete_version, subject, version, permanent=permanent
    )
    return answer(deleted)
