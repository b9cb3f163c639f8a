"""OpenAI's HTTP API (chat completions, models) over an ``OfflineUpstream``.

Handlers translate HTTP to core calls and results to OpenAI's JSON and server-sent-event
shapes; every decision lives in ``core``. Errors become ``{"error": {...}}`` through the one
table in ``routeiq_upstream.errors``. Latency is simulated with ``asyncio.sleep`` only, so a
slow answer never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any, TypedDict, Unpack

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from routeiq_upstream.api.metrics import UNRESOLVED, UpstreamMetrics
from routeiq_upstream.core.requests import parse_chat_request
from routeiq_upstream.core.upstream import Completion, OfflineUpstream
from routeiq_upstream.errors import (
    ROUTING_ERRORS,
    AuthenticationError,
    InvalidJSONError,
    RequestTooLargeError,
    UpstreamError,
    error_body,
    openai_error,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
OWNER = "routeiq-offline"
SSE_DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _header(value: str) -> str:
    # Header values are latin-1 on the wire; a dataset named from a CSV file could be anything.
    return value.encode("ascii", "backslashreplace").decode("ascii")


def answer_headers(completion: Completion) -> dict[str, str]:
    """The ``x-routeiq-*`` headers describing what the data holds for this request."""
    answer = completion.answer
    headers = {
        "x-routeiq-known": "true" if answer.known else "false",
        "x-routeiq-prompt-id": _header(answer.prompt_id),
        "x-routeiq-dataset": _header(answer.dataset),
        "x-routeiq-answer": answer.kind.value,
    }
    if answer.score is not None:
        # repr round-trips the float exactly, so clients can compare with the dataset.
        headers["x-routeiq-recorded-score"] = repr(answer.score)
    return headers


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    """OpenAI's error answer for ``exc``."""
    status = openai_error(exc)[0]
    return Response(
        _dumps(error_body(exc)).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


# eq=False: the app holds one, compared by identity.
@dataclass(kw_only=True, eq=False)
class UpstreamAPI:
    """The handlers, bound to one upstream, its metrics and its HTTP limits."""

    upstream: OfflineUpstream
    metrics: UpstreamMetrics = field(default_factory=UpstreamMetrics)
    # The bearer token requests must carry; None serves without authentication.
    api_key: InitVar[str | None] = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self, api_key: str | None) -> None:
        for dataset in self.upstream.index.datasets:
            self.metrics.indexed_prompts.labels(dataset.name).set(dataset.prompts)
        self._api_key = api_key.encode() if api_key else None
        # Recorded answers repeat: split and escape each text once, not once per request.
        self._deltas = lru_cache(maxsize=4096)(self._content_deltas)
        self._models_body = _dumps(
            {"object": "list", "data": [self._model_object(m) for m in self._listed()]}
        ).encode()

    # ------------------------------------------------------------------ helpers

    def _listed(self) -> list[str]:
        return [*self.upstream.catalog.models, *self.upstream.catalog.aliases]

    def _model_object(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": name, "object": "model", "created": 0, "owned_by": OWNER}
        target = self.upstream.catalog.aliases.get(name)
        if target is not None:
            entry["root"] = target
        return entry

    def _content_deltas(self, text: str) -> tuple[str, ...]:
        return tuple(
            f'{{"content":{encode_basestring(piece)}}}' for piece in self.upstream.chunks(text)
        )

    def _authorize(self, request: Request) -> None:
        if self._api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        if not hmac.compare_digest(token.strip().encode(), self._api_key):
            raise AuthenticationError("Incorrect API key provided.")

    async def _json_body(self, request: Request) -> Any:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large(int(declared))
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(size)
            parts.append(chunk)
        raw = b"".join(parts)
        if not raw.strip():
            raise InvalidJSONError(
                "We could not parse the JSON body of your request: the body is empty. "
                "Send a JSON object (Content-Type: application/json)."
            )
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            # ValueError covers bad JSON and bad UTF-8; RecursionError absurdly deep nesting.
            raise InvalidJSONError(
                f"We could not parse the JSON body of your request: {exc}"
            ) from exc

    def _too_large(self, size: int) -> RequestTooLargeError:
        return RequestTooLargeError(
            f"The request body is {size} bytes or more; this upstream accepts at most "
            f"{self.max_body_bytes} bytes."
        )

    # ------------------------------------------------------------------ endpoints

    def _failed(
        self, exc: UpstreamError, *, model: str, known: str, headers: dict[str, str] | None
    ) -> Response:
        self.metrics.observe(model=model, known=known, status=openai_error(exc)[0])
        return error_response(exc, headers)

    async def chat_completions(self, request: Request) -> Response:
        try:
            self._authorize(request)
            chat = parse_chat_request(await self._json_body(request))
            completion = self.upstream.complete(chat)
        except UpstreamError as exc:
            return self._failed(exc, model=UNRESOLVED, known=UNRESOLVED, headers=None)
        model, known = completion.model, "true" if completion.answer.known else "false"
        headers = answer_headers(completion)
        if completion.delay_s > 0:
            await self.sleep(completion.delay_s)
        if completion.fault is not None:
            headers["x-routeiq-injected-error"] = "true"
            return self._failed(completion.fault, model=model, known=known, headers=headers)
        self.metrics.observe(model=model, known=known, status=200)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(self.clock())
        if chat.stream:
            events = self._sse_events(completion, cid, created, include_usage=chat.include_usage)
            headers.update(SSE_HEADERS)
            if self.upstream.faults.chunk_delay_s <= 0:
                # Nothing to pace: the whole event stream in one body (same bytes an SSE client
                # parses, without a streaming task per request).
                stream = "".join(events).encode() + SSE_DONE
                return Response(stream, media_type="text/event-stream", headers=headers)
            return StreamingResponse(
                self._paced(events, include_usage=chat.include_usage),
                media_type="text/event-stream",
                headers=headers,
            )
        body = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": completion.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": completion.finish_reason,
                }
            ],
            "usage": completion.usage.as_dict(),
            "system_fingerprint": None,
        }
        return Response(_dumps(body).encode(), media_type="application/json", headers=headers)

    def _sse_events(
        self, completion: Completion, cid: str, created: int, *, include_usage: bool
    ) -> list[str]:
        """Every ``data:`` event of the stream but the closing ``[DONE]``."""
        # Chunks share everything but the delta: build the frame once, splice each delta in.
        head = (
            f'data: {{"id":"{cid}","object":"chat.completion.chunk","created":{created},'
            f'"model":{_dumps(completion.model)},"system_fingerprint":null,'
            f'"choices":[{{"index":0,"delta":'
        )
        tail_usage = ',"usage":null' if include_usage else ""

        def event(delta: str, finish: str = "null") -> str:
            return f'{head}{delta},"logprobs":null,"finish_reason":{finish}}}]{tail_usage}}}\n\n'

        events = [event('{"role":"assistant","content":""}')]
        events += [event(delta) for delta in self._deltas(completion.text)]
        events.append(event("{}", _dumps(completion.finish_reason)))
        if include_usage:
            events.append(
                f'data: {{"id":"{cid}","object":"chat.completion.chunk","created":{created},'
                f'"model":{_dumps(completion.model)},"system_fingerprint":null,"choices":[],'
                f'"usage":{_dumps(completion.usage.as_dict())}}}\n\n'
            )
        return events

    async def _paced(self, events: list[str], *, include_usage: bool) -> AsyncIterator[bytes]:
        # The pause falls between content chunks: not before the role chunk, not after the
        # finish (and usage) chunk.
        last_content = len(events) - (2 if include_usage else 1)
        for i, text in enumerate(events):
            if 0 < i < last_content:
                await self.sleep(self.upstream.faults.chunk_delay_s)
            yield text.encode()
        yield SSE_DONE

    async def list_models(self, request: Request) -> Response:
        try:
            self._authorize(request)
        except UpstreamError as exc:
            return error_response(exc)
        return Response(self._models_body, media_type="application/json")

    async def get_model(self, request: Request) -> Response:
        try:
            self._authorize(request)
            name = str(request.path_params["model"])
            if name not in self.upstream.catalog.aliases:
                self.upstream.catalog.resolve(name)
        except UpstreamError as exc:
            return error_response(exc)
        return JSONResponse(self._model_object(name))

    async def health_live(self, request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def health_ready(self, request: Request) -> Response:
        return JSONResponse({"status": "ready", **self.upstream.describe()})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[Route]:
        """Every endpoint; the OpenAI paths also answer without the ``/v1`` prefix."""
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.get_model, methods=["GET"]),
            Route("/models/{model:path}", self.get_model, methods=["GET"]),
            Route("/health/live", self.health_live, methods=["GET"]),
            Route("/health/ready", self.health_ready, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ]


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    routing_error = ROUTING_ERRORS.get(exc.status_code)
    if routing_error is not None:
        error = routing_error(request.method, request.url.path)
        return error_response(error, dict(exc.headers or {}))
    # Any other status Starlette raises: OpenAI's shape, without a code of ours.
    body = {"message": exc.detail, "type": "invalid_request_error", "param": None, "code": None}
    return JSONResponse({"error": body}, exc.status_code)


async def _on_unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("%s %s: unexpected error", request.method, request.url.path)
    return error_response(UpstreamError(f"Internal error: {type(exc).__name__}"))


class APIOptions(TypedDict, total=False):
    """``UpstreamAPI``'s optional collaborators and limits, as ``create_app`` passes them on."""

    metrics: UpstreamMetrics
    api_key: str | None
    max_body_bytes: int
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]


def create_app(upstream: OfflineUpstream, **options: Unpack[APIOptions]) -> Starlette:
    """The ASGI app serving ``upstream`` (``clock`` and ``sleep`` are there for tests)."""
    api = UpstreamAPI(upstream=upstream, **options)
    app = Starlette(
        routes=api.routes(),
        exception_handlers={HTTPException: _on_http_error, Exception: _on_unexpected_error},
    )
    app.state.api = api
    return app
