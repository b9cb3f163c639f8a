"""The trainer's errors: permanent ones dead-letter a request at once, transient ones retry.

``RequestError`` (bad parameters, no data, a router that cannot train on what was asked) will
fail the same way on every delivery, so the worker dead-letters it with the reason and moves
on. ``TrackingError`` (MLflow), ``StorageError`` (S3) and ``TransportError`` (Kafka) may pass,
so the worker retries them before giving up.
"""

from __future__ import annotations

from routeiq.errors import IntegrityError, RouteIQError, StorageError, TransportError


class TrainerError(RouteIQError):
    """Base of the trainer's own errors."""


class RequestError(TrainerError):
    """A retrain request that cannot succeed as asked (the reason says why)."""


class NoDataError(RequestError):
    """Too few usable examples to train and validate."""


class TrackingError(TrainerError):
    """MLflow refused or could not be reached."""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: infrastructure, not the request itself."""
    if isinstance(exc, IntegrityError):
        return False  # a corrupt shard stays corrupt
    return isinstance(exc, TrackingError | StorageError | TransportError)


def dependency_of(exc: BaseException) -> str | None:
    """The dependency a transient failure says is lost (``mlflow``, ``s3``, ``kafka``), as
    ``routeiq.dependencies`` names it; ``None`` for a failure of the request itself."""
    if not is_transient(exc):
        return None
    if isinstance(exc, TrackingError):
        return "mlflow"
    if isinstance(exc, StorageError):
        return "s3"
    return "kafka"
