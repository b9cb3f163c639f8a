"""Serving's typed outcome: an upstream failure is an HTTP error when nothing was sent yet,
an in-stream error event after that, and every request is recorded once with its status."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litellm.exceptions import RateLimitError, ServiceUnavailableError, Timeout
from litellm.types.utils import ModelResponseStream
from routeiq_gateway.api.app import create_app
from routeiq_gateway.upstream import UpstreamOutcome
from starlette.testclient import TestClient

from .conftest import ADMIN_KEY, CollectingPublisher, offline_gateway

BODY = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}


def _chunk(text: str) -> ModelResponseStream:
    return ModelResponseStream(choices=[{"index": 0, "delta": {"content": text}}])


class FailingUpstream:
    """Raises ``error`` after streaming ``chunks_first`` chunks (or at once, non-streaming)."""

    def __init__(self, error: Exception, *, chunks_first: int = 0) -> None:
        self.error = error
        self.chunks_first = chunks_first

    async def complete(self, *_: Any) -> tuple[Any, UpstreamOutcome]:
        raise self.error

    async def stream(self, *_: Any) -> AsyncIterator[Any]:
        for i in range(self.chunks_first):
            yield _chunk(f"part{i} ")
        raise self.error


def serve(model_file: Path, upstream: FailingUpstream) -> tuple[TestClient, Any, Any]:
    publisher = CollectingPublisher()
    gateway = offline_gateway(model_file, publisher, upstream=upstream)
    client = TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096))
    return client, gateway, publisher


def recorded(gateway: Any, publisher: CollectingPublisher) -> dict[str, Any]:
    [(topic, _, value)] = publisher.records
    assert topic == "decisions"
    return gateway.decision_serde.decode(value)


ERRORS = [
    (ServiceUnavailableError("down", llm_provider="openai", model="small"), 502, "ERROR"),
    (RateLimitError("slow down", llm_provider="openai", model="small"), 429, "ERROR"),
    (Timeout("too slow", model="small", llm_provider="openai"), 504, "TIMEOUT"),
]


@pytest.mark.parametrize(("error", "status", "outcome"), ERRORS)
def test_a_failed_completion_is_an_http_error_and_recorded(
    model_file: Path, error: Exception, status: int, outcome: str
) -> None:
    client, gateway, publisher = serve(model_file, FailingUpstream(error))
    r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == "upstream_error"
    event = recorded(gateway, publisher)
    assert event["outcome"]["status"] == outcome
    assert event["outcome"]["error_type"] == type(error).__name__


@pytest.mark.parametrize(("error", "status", "outcome"), ERRORS)
def test_a_stream_refused_before_its_first_chunk_fails_fast(
    model_file: Path, error: Exception, status: int, outcome: str
) -> None:
    client, gateway, publisher = serve(model_file, FailingUpstream(error))
    r = client.post("/v1/chat/completions", json={**BODY, "stream": True})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["type"] == "upstream_error"
    assert recorded(gateway, publisher)["outcome"]["status"] == outcome


def test_a_stream_that_fails_midway_reports_the_error_in_stream(model_file: Path) -> None:
    error = ServiceUnavailableError("gone", llm_provider="openai", model="small")
    client, gateway, publisher = serve(model_file, FailingUpstream(error, chunks_first=2))
    with client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    frames = [json.loads(line[6:]) for line in lines]
    assert [f["choices"][0]["delta"]["content"] for f in frames[:2]] == ["part0 ", "part1 "]
    assert frames[-1]["error"]["type"] == "upstream_error"
    assert "data: [DONE]" not in lines
    event = recorded(gateway, publisher)
    assert event["outcome"]["status"] == "ERROR"
    assert event["outcome"]["error_type"] == "ServiceUnavailableError"
