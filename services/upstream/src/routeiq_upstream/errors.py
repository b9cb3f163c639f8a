"""The upstream's errors and the ONE table that maps each to OpenAI's HTTP answer.

Core code raises these; the HTTP layer looks the class up in ``OPENAI_ERRORS`` and writes
``{"error": {"message", "type", "param", "code"}}`` as OpenAI does, so that the openai client
and LiteLLM raise the same exception classes they would against the real API (BadRequestError,
NotFoundError, AuthenticationError, RateLimitError, ServiceUnavailableError, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from routeiq.errors import RouteIQError


class UpstreamError(RouteIQError):
    """Base of this service's errors; ``param`` names the offending request field, if any."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidJSONError(UpstreamError):
    """The body is not JSON, or not a JSON object."""


class MissingParameterError(UpstreamError):
    """A required request field is absent."""


class InvalidTypeError(UpstreamError):
    """A request field has the wrong JSON type."""


class InvalidValueError(UpstreamError):
    """A request field has the right type but a value the API does not accept."""


class ModelNotFoundError(UpstreamError):
    """The requested model is neither served nor an alias of a served model."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )
        self.model = model


class AuthenticationError(UpstreamError):
    """The request lacks the API key the upstream was configured with, or has another."""


class RequestTooLargeError(UpstreamError):
    """The body exceeds ``max_body_bytes``."""


class RouteNotFoundError(UpstreamError):
    """No endpoint at that path."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"Unknown request URL: {method} {path}.")


class MethodNotAllowedError(UpstreamError):
    """The path exists but not with that HTTP method."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"Method {method} is not allowed for {path}.")


class InjectedRateLimitError(UpstreamError):
    """A configured fault: this (model, prompt) answers 429, as a throttled provider would."""


class InjectedUnavailableError(UpstreamError):
    """A configured fault: this (model, prompt) answers 503, as an overloaded provider would."""


# OpenAI answers every problem with the request itself as type "invalid_request_error";
# (HTTP status, OpenAI error code) per class.
_INVALID_REQUEST: Final[dict[type[UpstreamError], tuple[int, str]]] = {
    InvalidJSONError: (400, "invalid_json"),
    MissingParameterError: (400, "missing_required_parameter"),
    InvalidTypeError: (400, "invalid_type"),
    InvalidValueError: (400, "invalid_value"),
    AuthenticationError: (401, "invalid_api_key"),
    ModelNotFoundError: (404, "model_not_found"),
    RouteNotFoundError: (404, "unknown_url"),
    MethodNotAllowedError: (405, "method_not_allowed"),
    RequestTooLargeError: (413, "request_too_large"),
}

# (HTTP status, OpenAI error type, OpenAI error code) per class; a class not listed uses its
# nearest listed base. Types and codes are the ones OpenAI's API returns for the same failure.
OPENAI_ERRORS: Final[dict[type[BaseException], tuple[int, str, str | None]]] = {
    **{
        cls: (status, "invalid_request_error", code)
        for cls, (status, code) in _INVALID_REQUEST.items()
    },
    InjectedRateLimitError: (429, "requests", "rate_limit_exceeded"),
    InjectedUnavailableError: (503, "server_error", "service_unavailable"),
    UpstreamError: (500, "server_error", "internal_error"),
    RouteIQError: (500, "server_error", "internal_error"),
}

# Starlette's own routing failures (no such path, no such method), by HTTP status.
ROUTING_ERRORS: Final[dict[int, Callable[[str, str], UpstreamError]]] = {
    404: RouteNotFoundError,
    405: MethodNotAllowedError,
}


def openai_error(exc: BaseException) -> tuple[int, str, str | None]:
    """(HTTP status, type, code) for ``exc``: its class's row, else its nearest base's."""
    for cls in type(exc).__mro__:
        if cls in OPENAI_ERRORS:
            return OPENAI_ERRORS[cls]
    return 500, "server_error", "internal_error"


def error_body(exc: BaseException) -> dict[str, dict[str, str | None]]:
    """OpenAI's error object for ``exc``."""
    _, kind, code = openai_error(exc)
    message = exc.message if isinstance(exc, UpstreamError) else str(exc)
    param = exc.param if isinstance(exc, UpstreamError) else None
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
