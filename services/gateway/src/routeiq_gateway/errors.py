"""Gateway errors and their one mapping to HTTP: OpenAI-style bodies, never a 500 for bad input.

Body: ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``.
"""

from __future__ import annotations

from routeiq.errors import RouteIQError


class GatewayError(RouteIQError):
    """An error with an HTTP status and an OpenAI-style type/code."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

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


class BadRequest(GatewayError):
    status = 400
    code = "invalid_request"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "missing_admin_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "invalid_admin_key"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class UpstreamFailed(GatewayError):
    """The upstream failed after LiteLLM's retries and fallbacks."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, message: str, *, status: int = 502, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
