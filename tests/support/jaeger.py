"""Traffic through the running stack's gateway, and its routing spans read back from Jaeger.

Shared by the backfill test and the ``prepare_data`` test: both send real requests, wait until
the gateway's batched spans are searchable in Jaeger, then read them back their own way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import routeiq.telemetry as t
from routeiq.traces import JaegerClient, event_decision

SERVICE = "routeiq-gateway"  # the service name the gateway's tracer provider reports


def chat(http: httpx.Client, url: str, prompt: str, *, user: str, stream: bool) -> dict[str, str]:
    """One chat request to ``url`` (the gateway's ``/v1``); the decision headers it answered
    with."""
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [{"role": "user", "content": prompt}],
        "user": user,
        "stream": stream,
    }
    with http.stream("POST", f"{url}/chat/completions", json=body) as r:
        r.read()
        assert r.status_code == 200, r.text
        return {
            "decision_id": r.headers["x-routeiq-decision-id"],
            "model": r.headers["x-routeiq-model"],
            "strategy": r.headers["x-routeiq-strategy"],
        }


def route_spans(jaeger: JaegerClient, start_us: int) -> dict[str, dict[str, Any]]:
    """The routing spans Jaeger holds since ``start_us``, by the decision id their event
    carries: ``{"trace", "span", "record"}`` each."""
    traces = jaeger.traces(
        service=SERVICE,
        operation=t.ROUTE_SPAN_NAME,
        start_us=start_us,
        end_us=time.time_ns() // 1000 + 1_000_000,
        limit=2000,
    )
    found = {}
    for trace in traces:
        for span in trace.get("spans") or []:
            record = event_decision(span) if span["operationName"] == t.ROUTE_SPAN_NAME else None
            if record is not None:
                found[record["event_id"]] = {"trace": trace, "span": span, "record": record}
    return found


def wait_traced(
    jaeger_url: str, ids: Sequence[str], start_us: int, *, timeout: float = 60.0
) -> dict[str, dict[str, Any]]:
    """``route_spans`` once every decision of ``ids`` is in Jaeger (the gateway batches its
    spans, about every 5 s); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as http:
        jaeger = JaegerClient(base_url=jaeger_url, http=http)
        while True:
            spans = route_spans(jaeger, start_us)
            if set(ids) <= set(spans):
                return spans
            if time.monotonic() > deadline:
                missing = len(set(ids) - set(spans))
                raise AssertionError(f"{missing} of {len(ids)} traces not in Jaeger in {timeout}s")
            time.sleep(1.0)
