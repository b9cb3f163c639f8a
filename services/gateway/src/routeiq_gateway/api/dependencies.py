"""What every handler needs from the request: the app's collaborators, the JSON body, the
admin check. Handlers stay one screen each and never reach for globals."""

from __future__ import annotations

import functools
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from routeiq_gateway.budgets import Budgets
from routeiq_gateway.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from routeiq_gateway.gateway import Gateway
from routeiq_gateway.keys import Access, Caller
from routeiq_gateway.sync import ControlPlane, ModelSync

Handler = Callable[[Request], Awaitable[Response]]
# Deeper than any OpenAI body (a tool's JSON schema included); deeper JSON is an attack.
MAX_JSON_DEPTH = 64
# A lone UTF-16 surrogate decodes from JSON ("\ud800") but is not text: it cannot be encoded,
# hashed or forwarded, so it is refused here instead of failing deep inside routing.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ApiContext:
    """The collaborators of one app instance (kept on ``app.state``)."""

    gateway: Gateway
    sync: ModelSync | None
    admin_key: str
    max_body_bytes: int
    started_at: float
    # Keys off and no budgets unless the composition root hands them in.
    access: Access = field(default_factory=Access)
    budgets: Budgets | None = None
    # The fleet's configuration on the control topic; None: this replica's own (in memory).
    control: ControlPlane | None = None


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.routeiq
    return ctx


async def caller(request: Request) -> Caller | None:
    """Who calls, from the request's key (None when the gateway has no keys configured);
    ``InvalidApiKey`` (401) without a valid one."""
    return await context(request).access.caller(request.headers.get("authorization", ""))


# The identity headers a client may send only when no key says who it is.
_TEAM, _USER = "x-routeiq-team", "x-routeiq-user"


def identity_headers(headers: Mapping[str, str], who: Caller | None) -> Mapping[str, str]:
    """``headers`` with the team (and user) of ``who``'s key: a key's team wins over any the
    client names, so A/B units, rollout flags and budgets cannot be claimed by another team.
    A key without a user leaves the user to the client (its end users); the master key
    may act for any team."""
    if who is None or who.master:
        return headers
    out = {k.lower(): v for k, v in headers.items() if k.lower() != _TEAM}
    if who.team:
        out[_TEAM] = who.team
    if who.user:
        out[_USER] = who.user
    return out


def model_sync(request: Request) -> ModelSync:
    """The gateway's model sync, or a 400 when this gateway does not follow a router."""
    sync = context(request).sync
    if sync is None:
        raise BadRequest("model sync is not enabled on this gateway")
    return sync


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, refusing wrong types, oversize bodies and bad JSON."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in {"application/json", ""}:
        raise UnsupportedMediaType(f"content-type must be application/json, got {ctype!r}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise BadRequest("the request body is empty; expected a JSON object")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError, and an integer literal over Python's 4,300
        # digits (a ValueError of int(), a 500 before): all the client's malformed JSON.
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    check_json(body)
    return body


def check_json(value: Any) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH`` or holding lone surrogates.

    Iterative, so a hostile body cannot exhaust the stack here either."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise BadRequest("the request holds a string that is not valid Unicode")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels")
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        stack.extend((item, depth + 1) for item in items)


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) and every provider do not.
    raise BadRequest(f"the request body is not valid JSON: {name} is not a JSON number")


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, within the app's body limit."""
    return await read_json(request, context(request).max_body_bytes)


def check_admin_key(request: Request) -> None:
    """``Unauthorized`` without the admin key, ``Forbidden`` with a wrong one."""
    auth = request.headers.get("authorization", "")
    given = (
        auth[7:]
        if auth.lower().startswith("bearer ")
        else request.headers.get("x-routeiq-admin-key", "")
    )
    if not given:
        raise Unauthorized("admin endpoints need the admin key (Authorization: Bearer)")
    # Constant time: the comparison must not tell an attacker how much of the key was right.
    if not hmac.compare_digest(given.encode(), context(request).admin_key.encode()):
        raise Forbidden("the admin key is wrong")


def admin_only(handler: Handler) -> Handler:
    """``handler`` behind the admin-key check."""

    @functools.wraps(handler)  # keeps the handler's OpenAPI operation
    async def run(request: Request) -> Response:
        check_admin_key(request)
        return await handler(request)

    run.needs_admin_key = True  # type: ignore[attr-defined]  # read by the OpenAPI document
    return run
