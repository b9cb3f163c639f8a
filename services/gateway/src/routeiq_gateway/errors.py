"""Gateway errors and their one mapping to HTTP: OpenAI-style bodies, never a 500 for bad input.

Body: ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``. Each error class
states its HTTP status, OpenAI error type and default code once, in its class line.
"""

from __future__ import annotations

from typing import Any

from routeiq.errors import RouteIQError


class GatewayError(RouteIQError):
    """An error with an HTTP status and an OpenAI-style type/code."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init_subclass__(
        cls, *, status: int, code: str, type: str = "invalid_request_error", **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.status, cls.code, cls.type = status, code, type

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(GatewayError, status=400, code="invalid_request"):
    """The request is malformed or names something it may not."""


class NotFound(GatewayError, status=404, code="not_found"):
    """The model, decision or endpoint named does not exist here."""


class MethodNotAllowed(GatewayError, status=405, code="method_not_allowed"):
    """The endpoint exists but not for this HTTP method."""


class PayloadTooLarge(GatewayError, status=413, code="request_too_large"):
    """The body is over ``ROUTEIQ_GATEWAY_MAX_BODY_BYTES``."""


class UnsupportedMediaType(GatewayError, status=415, code="unsupported_media_type"):
    """The body is not JSON."""


class Unauthorized(GatewayError, status=401, code="missing_admin_key", type="authentication_error"):
    """An admin endpoint was called without the admin key."""


class Forbidden(GatewayError, status=403, code="invalid_admin_key", type="permission_error"):
    """An admin endpoint was called with the wrong admin key."""


class UpstreamFailed(GatewayError, status=502, code="upstream_error", type="upstream_error"):
    """The upstream failed after LiteLLM's retries and fallbacks."""

    def __init__(self, message: str, *, status: int = 502, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class SyncError(RouteIQError):
    """A bundle could not be synced or activated; the current router keeps serving.

    Not an HTTP error: model sync runs in the background; the admin API turns a refused
    rollback into a ``BadRequest``."""

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.stage = stage
