"""Serving a routed request: the upstream call, SSE framing, and a typed outcome.

A non-streaming request ends ``Served`` (the response and what happened upstream) or raises
``UpstreamFailed``. A streaming request fails fast, before a byte is sent, when the upstream
refuses before its first chunk (the client gets an HTTP error); a failure after that is
reported in-stream. Either way the request is recorded exactly once, when it ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import routeiq.telemetry as attrs
from litellm.exceptions import Timeout as LiteLLMTimeout
from opentelemetry import trace

from routeiq_gateway.errors import UpstreamFailed
from routeiq_gateway.routing import Plan
from routeiq_gateway.telemetry import DecisionTelemetry
from routeiq_gateway.upstream import Upstream, UpstreamOutcome, response_text

DONE = b"data: [DONE]\n\n"
# (plan, the answer's text, what happened upstream) once a request is answered and recorded.
OnServed = Callable[[Plan, str, UpstreamOutcome], None]


@dataclass(frozen=True, slots=True)
class Served:
    """A completed upstream call: the OpenAI response and what happened upstream."""

    response: Any
    outcome: UpstreamOutcome


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed upstream call: what to log and what to tell the client."""

    outcome: UpstreamOutcome
    error: UpstreamFailed


def classify_failure(plan: Plan, exc: BaseException) -> Failure:
    """The outcome to log and the HTTP error for an upstream exception (after retries)."""
    timeout = isinstance(exc, LiteLLMTimeout | TimeoutError)
    outcome = UpstreamOutcome(
        served_group=plan.group,
        upstream_ms=(time.perf_counter() - plan.started) * 1000.0,
        status="TIMEOUT" if timeout else "ERROR",
        error_type=type(exc).__name__,
        attempted=[plan.group],
    )
    return Failure(outcome, _client_error(exc, timeout=timeout))


def _client_error(exc: BaseException, *, timeout: bool) -> UpstreamFailed:
    status = int(getattr(exc, "status_code", 0) or 0)
    message = f"upstream failed after retries and fallbacks: {type(exc).__name__}: {exc}"
    if timeout:
        return UpstreamFailed(message, status=504, code="upstream_timeout")
    if status == 429:
        return UpstreamFailed(message, status=429, code="upstream_rate_limited")
    if 400 <= status < 500:
        # The provider refused the request itself (bad parameters): the client's to fix.
        return UpstreamFailed(message, status=400, code="upstream_bad_request")
    return UpstreamFailed(message, status=502)


def sse_frame(payload: bytes) -> bytes:
    """One server-sent event carrying a JSON payload."""
    return b"data: " + payload + b"\n\n"


class Serving:
    """Calls the upstream for a plan and records the request when it ends."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        telemetry: DecisionTelemetry,
        on_served: OnServed | None = None,
    ) -> None:
        self.upstream = upstream
        self._telemetry = telemetry
        # Told of every answered request once it is recorded (shadow sampling); must not raise.
        self._on_served = on_served
        self._tracer = trace.get_tracer("routeiq.gateway")

    async def complete(self, plan: Plan) -> Served:
        """Serve a non-streaming request; ``UpstreamFailed`` when the upstream gave up."""
        with self._tracer.start_as_current_span(attrs.ROUTE_SPAN_NAME) as span:
            try:
                response, outcome = await self.upstream.complete(
                    plan.group, plan.request.messages, plan.request.params
                )
            except Exception as exc:
                failure = classify_failure(plan, exc)
                self._telemetry.record(plan, failure.outcome, span)
                raise failure.error from exc
            self._telemetry.record(plan, outcome, span)
            if self._on_served is not None:
                self._on_served(plan, response_text(response), outcome)
            return Served(response, outcome)

    async def open_stream(self, plan: Plan) -> AsyncIterator[bytes]:
        """The SSE stream, started: ``UpstreamFailed`` here if the upstream refused before
        its first chunk, so the client gets an HTTP error instead of a broken stream."""
        frames = self._frames(plan)
        # The generator raises from its first step only when nothing was sent yet.
        first = await frames.__anext__()

        async def started() -> AsyncIterator[bytes]:
            yield first
            async for frame in frames:
                yield frame

        return started()

    async def _frames(self, plan: Plan) -> AsyncGenerator[bytes, None]:
        outcome = UpstreamOutcome(served_group=plan.group, upstream_ms=0.0)
        span = self._tracer.start_span(attrs.ROUTE_SPAN_NAME)
        sent = completed = False
        # The answer's text, kept only when someone is told of it.
        parts: list[str] | None = [] if self._on_served is not None else None
        try:
            async for chunk in self.upstream.stream(
                plan.group, plan.request.messages, plan.request.params, outcome
            ):
                frame = sse_frame(chunk.model_dump_json(exclude_none=True).encode())
                sent = True
                if parts is not None:
                    parts.append(_delta_text(chunk))
                yield frame
            yield DONE
            completed = True
        except Exception as exc:  # any upstream failure: recorded, then reported
            failure = classify_failure(plan, exc)
            outcome = failure.outcome
            if not sent:
                raise failure.error from exc
            yield sse_frame(json.dumps(failure.error.body(), separators=(",", ":")).encode())
        finally:
            # The client went away mid-stream (the generator was closed): say so.
            if not completed and outcome.status == "SUCCESS":
                outcome.status = "CANCELLED"
            self._telemetry.record(plan, outcome, span)
            span.end()
            if completed and parts is not None and self._on_served is not None:
                self._on_served(plan, "".join(parts), outcome)


def _delta_text(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    return str(getattr(delta, "content", None) or "")
