"""The registry's errors and the ONE table that maps every error to Confluent's HTTP answer.

Core code raises these (or the shared ``SchemaParseError`` / ``IncompatibleSchemaError`` /
``TransportError`` from ``routeiq.errors``); the HTTP layer only looks the class up in
``CONFLUENT_ERRORS`` and writes ``{"error_code": N, "message": "..."}``. Messages follow
Confluent's wording where clients or operators might match on them.
"""

from __future__ import annotations

from typing import Final

from routeiq.errors import (
    IncompatibleSchemaError,
    RegistryError,
    RouteIQError,
    SchemaParseError,
    TransportError,
)


class RegistryServiceError(RegistryError):
    """Base of this service's errors; status and code come from ``CONFLUENT_ERRORS``."""

    def __init__(self, message: str) -> None:
        http_status, error_code = confluent_error(self)
        super().__init__(message, error_code=error_code, http_status=http_status)


class SubjectNotFoundError(RegistryServiceError):
    """No (visible) version is registered under the subject."""


class VersionNotFoundError(RegistryServiceError):
    """The subject exists but not that version (or the version is soft-deleted)."""


class SchemaNotFoundError(RegistryServiceError):
    """No schema with that id, or the schema is not registered under the subject."""


class SubjectSoftDeletedError(RegistryServiceError):
    """Soft-deleting a subject whose versions are all soft-deleted already."""


class SubjectNotSoftDeletedError(RegistryServiceError):
    """Permanently deleting a subject that still has live versions."""


class VersionSoftDeletedError(RegistryServiceError):
    """Soft-deleting a version that is soft-deleted already."""


class VersionNotSoftDeletedError(RegistryServiceError):
    """Permanently deleting a version that was not soft-deleted first."""


class SubjectCompatibilityNotConfiguredError(RegistryServiceError):
    """The subject has no level of its own (``?defaultToGlobal=true`` falls back)."""


class InvalidSchemaError(RegistryServiceError):
    """The request's schema is unusable: missing, not Avro, with references, ..."""


class InvalidVersionError(RegistryServiceError):
    """A version that is neither 1..2^31-1, ``-1`` nor ``latest``."""

    def __init__(self, version: object) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"'
        )


class InvalidCompatibilityLevelError(RegistryServiceError):
    """A compatibility level that is not one of Confluent's seven."""

    def __init__(self, level: object) -> None:
        super().__init__(
            f"Invalid compatibility level {level!r}. Valid values are none, backward, forward, "
            "full, backward_transitive, forward_transitive, and full_transitive"
        )


class InvalidModeError(RegistryServiceError):
    """A mode that is not READWRITE, READONLY or IMPORT."""

    def __init__(self, mode: object) -> None:
        super().__init__(f"Invalid mode {mode!r}. Valid values are READWRITE, READONLY and IMPORT")


class OperationNotPermittedError(RegistryServiceError):
    """The subject's mode forbids the write (read-only, not in import mode, an id clash)."""


class SubjectModeNotConfiguredError(RegistryServiceError):
    """The subject has no mode of its own (``?defaultToGlobal=true`` falls back)."""


class BadRequestError(RegistryServiceError):
    """The request body is not a JSON object (malformed JSON, wrong top-level type)."""


class UnsupportedMediaTypeError(RegistryServiceError):
    """The request's Content-Type is not one the registry accepts."""


class RouteNotFoundError(RegistryServiceError):
    """No endpoint at that path."""


class MethodNotAllowedError(RegistryServiceError):
    """The path exists but not with that HTTP method."""


class NotReadyError(RegistryServiceError):
    """The registry has not replayed its log to the end yet; clients should retry."""


class StoreError(TransportError):
    """The Kafka-backed log failed (write refused, broker unreachable, topic misconfigured)."""


class StoreTimeoutError(StoreError):
    """A write was not durable, or not read back by the registry, within the time allowed."""


# (HTTP status, Confluent error_code) per error class; a class not listed uses its nearest
# listed base. Codes are Confluent's (io.confluent.kafka.schemaregistry.rest.exceptions.Errors);
# plain HTTP failures (bad JSON, unknown route) use the status itself, as Confluent's REST layer
# does. NotReadyError borrows 50003 (Confluent: "cannot reach the primary"), the closest meaning.
CONFLUENT_ERRORS: Final[dict[type[BaseException], tuple[int, int]]] = {
    SubjectNotFoundError: (404, 40401),
    VersionNotFoundError: (404, 40402),
    SchemaNotFoundError: (404, 40403),
    SubjectSoftDeletedError: (404, 40404),
    SubjectNotSoftDeletedError: (404, 40405),
    VersionSoftDeletedError: (404, 40406),
    VersionNotSoftDeletedError: (404, 40407),
    SubjectCompatibilityNotConfiguredError: (404, 40408),
    SubjectModeNotConfiguredError: (404, 40409),
    IncompatibleSchemaError: (409, 409),
    SchemaParseError: (422, 42201),
    InvalidSchemaError: (422, 42201),
    InvalidVersionError: (422, 42202),
    InvalidCompatibilityLevelError: (422, 42203),
    InvalidModeError: (422, 42204),
    OperationNotPermittedError: (422, 42205),
    BadRequestError: (400, 400),
    RouteNotFoundError: (404, 404),
    MethodNotAllowedError: (405, 405),
    UnsupportedMediaTypeError: (415, 415),
    NotReadyError: (503, 50003),
    StoreTimeoutError: (500, 50002),
    StoreError: (500, 50001),
    RouteIQError: (500, 50001),
}


# Starlette's own routing failures by HTTP status: the error and its message, which may name
# the request's {method} and {path}.
ROUTING_ERRORS: Final[dict[int, tuple[type[RegistryServiceError], str]]] = {
    404: (RouteNotFoundError, "HTTP 404 Not Found: no endpoint at {path}"),
    405: (MethodNotAllowedError, "HTTP 405 Method Not Allowed: {method} {path}"),
}


def confluent_error(exc: BaseException) -> tuple[int, int]:
    """(HTTP status, Confluent error_code) for ``exc``: its class's row, else its nearest base's."""
    for cls in type(exc).__mro__:
        if cls in CONFLUENT_ERRORS:
            return CONFLUENT_ERRORS[cls]
    return 500, 50001
