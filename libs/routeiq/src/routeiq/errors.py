"""One error hierarchy for all of RouteIQ.

Third-party exceptions (librdkafka, minio, redis, avro) are wrapped at the boundary with
``raise ... from exc`` so callers catch RouteIQ errors and still see the original cause.
"""

from __future__ import annotations


class RouteIQError(Exception):
    """Base of every error RouteIQ raises on purpose."""


class ConfigError(RouteIQError):
    """Invalid or contradictory configuration, refused at start with the reason."""


class ContractError(RouteIQError):
    """Something is wrong with an event contract (schema file, registry, compatibility)."""


class SchemaParseError(ContractError):
    """An Avro schema does not parse; the message carries the parser's reason."""


class IncompatibleSchemaError(ContractError):
    """A schema is not compatible with earlier versions under the subject's level."""

    def __init__(self, message: str, *, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


class SerializationError(ContractError):
    """A record could not be encoded or decoded (wrong shape, unknown schema id, bad bytes)."""


class InvalidRecordError(ContractError):
    """A record decoded but breaks a rule its consumer relies on (key, score range, embedding
    size). Like an undecodable record, a service dead-letters it with this message as the reason.
    """


class RegistryError(ContractError):
    """The schema registry answered with an error (Confluent ``error_code`` preserved)."""

    def __init__(self, message: str, *, error_code: int = 50001, http_status: int = 500) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.http_status = http_status


class TransportError(RouteIQError):
    """Kafka could not be reached or refused an operation."""


class StorageError(RouteIQError):
    """Object storage (S3) failed."""


class ArtifactNotFoundError(StorageError):
    """The requested object or object version does not exist."""


class IntegrityError(StorageError):
    """Bytes read back do not match their recorded sha256."""


class LockError(RouteIQError):
    """A distributed lock could not be acquired, renewed or released."""
