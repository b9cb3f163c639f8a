"""Gateway errors and their one mapping to HTTP: OpenAI-style bodies, never a 500 for bad input.

Body: ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``. Each error class
states its HTTP status, OpenAI error type and default code once, in its class line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routeiq.errors import RouteIQError

if TYPE_CHECKING:
    from pydantic import ValidationError


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


# How a pydantic error type reads after "'field' must be ...": the phrase OpenAI's own
# messages use for each JSON type and rule.
_EXPECTED = {
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "bool_type": "a boolean",
    "int_type": "an integer",
    "float_type": "a number",
    "int_parsing": "an integer",
    "float_parsing": "a number",
    "none_required": "null",
}


def invalid(exc: ValidationError, data: Any) -> BadRequest:
    """A request model's ``ValidationError`` as the 400 OpenAI would send: the message and
    ``param`` name the field's path in the client's JSON (``messages[0].content``).

    Of several errors (one per member of a union), the one deepest in the body wins: it is the
    member the client meant; errors on the same field are joined ("a string or an array")."""
    located = [(_path(err["loc"], data, err["type"] == "missing"), err) for err in exc.errors()]
    depth = max(len(path) for path, _ in located)
    deepest = [(path, err) for path, err in located if len(path) == depth]
    path, first = deepest[0]
    where = _render(path) or "body"
    kind = first["type"]
    if kind == "extra_forbidden":
        unknown = sorted(_render(p) for p, e in located if e["type"] == "extra_forbidden")
        return BadRequest(f"unknown field(s) {unknown}", param=unknown[0])
    if kind == "missing":
        return BadRequest(f"'{where}' is required", param=where)
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        ctx = first.get("ctx", {})
        tag = f"{where}.{str(ctx.get('discriminator', 'type')).strip(chr(39))}"
        if kind == "union_tag_not_found":
            return BadRequest(f"'{tag}' is required", param=tag)
        return BadRequest(f"'{tag}' must be one of [{ctx['expected_tags']}]", param=tag)
    reasons = list(dict.fromkeys(_reason(err) for p, err in deepest if p == path))
    return BadRequest(f"'{where}' must be {' or '.join(reasons)}", param=where)


def _reason(err: Any) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "expected":
        return str(ctx["what"])
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "non-empty"
    if kind == "string_too_short":
        return f"a string of at least {ctx['min_length']} character(s)"
    if kind == "string_too_long":
        return f"a string of at most {ctx['max_length']} characters"
    if kind in {"too_short", "too_long"}:
        return f"{ctx.get('min_length', 0)}-{ctx.get('max_length', '')} long"
    if kind == "string_pattern_mismatch":
        return f"a string matching {ctx['pattern']}"
    if kind in {"greater_than_equal", "less_than_equal"}:
        return f">= {ctx['ge']}" if "ge" in ctx else f"<= {ctx['le']}"
    if kind == "literal_error":
        return f"one of {ctx['expected']}"
    return _EXPECTED.get(kind) or f"valid ({err['msg']})"


def _path(loc: tuple[int | str, ...], data: Any, missing: bool) -> list[int | str]:
    """The JSON path of an error: ``loc`` without pydantic's union labels (``str``,
    ``list[...]``) and discriminator tags, found by walking the client's data itself;
    ``missing``: the last key is a field the client left out."""
    path: list[int | str] = []
    node = data
    for i, key in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        # A discriminated union names the member by its tag, which in our models is also the
        # name of the member's one field: {"type": "text", "text": ...} -> ("text", "text").
        if isinstance(node, dict) and node.get("type") == key == following:
            continue
        in_list = isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        if in_list or (isinstance(node, dict) and key in node):
            node = node[key]
        elif not (missing and i == len(loc) - 1):
            continue  # a union member's label, not a place in the body
        path.append(key)
    return path


def _render(path: list[int | str]) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else str(key)
    return text


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


class InvalidApiKey(GatewayError, status=401, code="invalid_api_key"):
    """A chat or feedback request without a valid key, where keys are configured (OpenAI's
    own 401: ``invalid_request_error`` / ``invalid_api_key``)."""


class QuotaExceeded(GatewayError, status=429, code="insufficient_quota", type="insufficient_quota"):
    """The key's team is at its hard budget limit (OpenAI's ``insufficient_quota`` 429)."""


class KeysUnavailable(GatewayError, status=503, code="key_store_unavailable", type="api_error"):
    """A key not verified lately cannot be checked: Redis does not answer (keys fail closed)."""


class ControlUnavailable(GatewayError, status=503, code="control_unavailable", type="api_error"):
    """A routing configuration change cannot be written now (Kafka or the fleet's write lock
    in Redis does not answer, or this replica has not read the control topic yet); nothing
    was changed."""


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
