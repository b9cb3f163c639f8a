"""The HTTP API through Starlette's TestClient: OpenAI shapes, SSE, headers, errors, faults,
latency (through a recording sleep, never the clock) and metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.routing.datasets import GPT4, MIXTRAL
from routeiq_upstream.core import FaultPolicy, OfflineUpstream
from starlette.testclient import TestClient

URL = "/v1/chat/completions"


def chat(prompt: Any, model: str = "gpt-4", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **fields}


def sse_events(text: str) -> list[Any]:
    """Each ``data:`` payload of an SSE body, JSON-decoded (``[DONE]`` kept as a string)."""
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


class RecordingSleep:
    """An async ``sleep`` that only records how long it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def assert_openai_error(response: Any, status: int, code: str | None, param: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]


def test_recorded_answer_with_headers_and_usage(client: TestClient) -> None:
    response = client.post(URL, json=chat("What is  2+2?\n"))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == GPT4  # the alias resolves to the canonical name
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "4", "refusal": None}
    assert choice["finish_reason"] == "stop"
    # ceil(bytes/4): prompt 3 (priming) + 3 (message) + "user" 1 + 14 bytes 4; answer "4" 1.
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}
    headers = response.headers
    assert headers["x-routeiq-known"] == "true"
    assert headers["x-routeiq-prompt-id"] == "tiny-0"
    assert headers["x-routeiq-dataset"] == "tiny"
    assert headers["x-routeiq-answer"] == "recorded"
    assert headers["x-routeiq-recorded-score"] == "1.0"


def test_scored_and_unrecorded_headers(client: TestClient) -> None:
    scored = client.post(URL, json=chat("Name a colour.", model="big-model"))
    assert scored.headers["x-routeiq-answer"] == "scored"
    assert scored.headers["x-routeiq-recorded-score"] == "1.0"
    assert scored.headers["x-routeiq-dataset"] == "scores"
    assert "no answer text of big-model" in scored.json()["choices"][0]["message"]["content"]
    unknown = client.post(URL, json=chat("Never recorded."))
    assert unknown.headers["x-routeiq-known"] == "false"
    assert unknown.headers["x-routeiq-dataset"] == "none"
    assert unknown.headers["x-routeiq-prompt-id"].startswith("unrecorded-")
    assert "x-routeiq-recorded-score" not in unknown.headers


def test_unknown_prompts_answer_the_same_bytes_every_time(
    make_upstream: Callable[..., OfflineUpstream], client_for: Callable[..., TestClient]
) -> None:
    first = client_for(make_upstream(), clock=lambda: 1_700_000_000.0)
    second = client_for(make_upstream(), clock=lambda: 1_700_000_000.0)
    a = first.post(URL, json=chat("Tell me about fjords."))
    b = second.post(URL, json=chat("Tell me   about fjords."))  # same prompt, normalised
    assert a.json()["id"] != b.json()["id"]
    strip = lambda r: r.content.replace(r.json()["id"].encode(), b"")  # noqa: E731
    assert strip(a) == strip(b)
    assert a.headers["x-routeiq-prompt-id"] == b.headers["x-routeiq-prompt-id"]


def test_list_of_parts_content_is_looked_up_by_its_text(client: TestClient) -> None:
    parts = [{"type": "text", "text": "What is"}, {"type": "text", "text": "2+2?"}]
    response = client.post(URL, json=chat(parts, model=MIXTRAL))
    assert response.json()["choices"][0]["message"]["content"] == "5"
    assert response.headers["x-routeiq-recorded-score"] == "0.0"


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_gives_the_same_text_in_openai_chunks(
    client: TestClient, include_usage: bool
) -> None:
    plain = client.post(URL, json=chat("Only GPT-4 was asked this.", model=MIXTRAL)).json()
    fields: dict[str, Any] = {"stream": True}
    if include_usage:
        fields["stream_options"] = {"include_usage": True}
    response = client.post(URL, json=chat("Only GPT-4 was asked this.", model=MIXTRAL, **fields))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-routeiq-known"] == "false"
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MIXTRAL for c in chunks)
    assert all(("usage" in c) is include_usage for c in chunks)
    if include_usage:
        final = chunks.pop()
        assert final["choices"] == []
        assert final["usage"] == plain["usage"]
        assert all(c["usage"] is None for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert len(pieces) > 5  # two words per chunk in these tests
    assert "".join(pieces) == plain["choices"][0]["message"]["content"]


def test_chunk_delay_paces_the_stream_with_the_injected_sleep(
    make_upstream: Callable[..., OfflineUpstream], client_for: Callable[..., TestClient]
) -> None:
    sleep = RecordingSleep()
    slept = sleep.calls
    upstream = make_upstream(faults=FaultPolicy(chunk_delay_ms=5))
    client = client_for(upstream, sleep=sleep)
    events = sse_events(client.post(URL, json=chat("Never recorded.", stream=True)).text)
    content_chunks = len(events) - 3  # role chunk, finish chunk, [DONE]
    assert slept == [0.005] * content_chunks


def test_latency_is_awaited_per_model(
    make_upstream: Callable[..., OfflineUpstream], client_for: Callable[..., TestClient]
) -> None:
    sleep = RecordingSleep()
    slept = sleep.calls
    faults = FaultPolicy(latency_ms=250, model_latency_ms={MIXTRAL: 40})
    client = client_for(make_upstream(faults=faults), sleep=sleep)
    client.post(URL, json=chat("What is 2+2?"))
    client.post(URL, json=chat("What is 2+2?", model=MIXTRAL))
    assert slept == [0.25, 0.04]
    slept.clear()
    client_for(make_upstream(), sleep=sleep).post(URL, json=chat("What is 2+2?"))
    assert slept == []  # no latency configured: no sleep at all


def test_max_tokens_truncates_and_says_length(client: TestClient) -> None:
    full = client.post(URL, json=chat("Never recorded.")).json()
    cut = client.post(URL, json=chat("Never recorded.", max_tokens=5)).json()
    text = cut["choices"][0]["message"]["content"]
    assert cut["choices"][0]["finish_reason"] == "length"
    assert full["choices"][0]["message"]["content"].startswith(text)
    assert len(text) == 20
    assert cut["usage"]["completion_tokens"] == 5
    assert cut["usage"]["prompt_tokens"] == full["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b'"a string"', "invalid_type"),
    ],
)
def test_unparseable_bodies_are_400(client: TestClient, raw: bytes, code: str) -> None:
    response = client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert_openai_error(response, 400, code, None)


def test_missing_messages_is_400_naming_the_field(client: TestClient) -> None:
    response = client.post(URL, json={"model": "gpt-4"})
    assert_openai_error(response, 400, "missing_required_parameter", "messages")


def test_unknown_model_is_404_model_not_found(client: TestClient) -> None:
    response = client.post(URL, json=chat("What is 2+2?", model="gpt-5"))
    assert_openai_error(response, 404, "model_not_found", "model")
    assert "gpt-5" in response.json()["error"]["message"]


def test_bodies_over_the_limit_are_413(
    make_upstream: Callable[..., OfflineUpstream], client_for: Callable[..., TestClient]
) -> None:
    client = client_for(make_upstream(), max_body_bytes=2048)
    assert client.post(URL, json=chat("x" * 1500)).status_code == 200
    response = client.post(URL, json=chat("x" * 3000))
    assert_openai_error(response, 413, "request_too_large", None)

    def chunked() -> Any:  # no content-length: the limit applies while reading
        for _ in range(10):
            yield b" " * 500

    response = client.post(URL, content=chunked(), headers={"content-type": "application/json"})
    assert_openai_error(response, 413, "request_too_large", None)


def test_api_key_is_required_when_configured(
    make_upstream: Callable[..., OfflineUpstream], client_for: Callable[..., TestClient]
) -> None:
    client = client_for(make_upstream(), api_key="s3cret")
    assert_openai_error(client.post(URL, json=chat("hi")), 401, "invalid_api_key", None)
    wrong = {"authorization": "Bearer nope"}
    assert_openai_error(
        client.post(URL, json=chat("hi"), headers=wrong), 401, "invalid_api_key", None
    )
    assert_openai_error(client.get("/v1/models"), 401, "invalid_api_key", None)
    good = {"authorization": "Bearer s3cret"}
    assert client.post(URL, json=chat("hi"), headers=good).status_code == 200
    assert client.get("/v1/models", headers=good).status_code == 200
    # Probes and scrapes stay open.
    assert client.get("/health/ready").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("status", "code"), [(503, "service_unavailable"), (429, "rate_limit_exceeded")]
)
def test_injected_errors_hit_the_configured_model_only(
    make_upstream: Callable[..., OfflineUpstream],
    client_for: Callable[..., TestClient],
    status: int,
    code: str,
) -> None:
    faults = FaultPolicy(error_rate={GPT4: 1.0}, error_status=status)
    client = client_for(make_upstream(faults=faults))
    failed = client.post(URL, json=chat("What is 2+2?"))
    assert_openai_error(failed, status, code, None)
    assert failed.headers["x-routeiq-injected-error"] == "true"
    assert failed.headers["x-routeiq-prompt-id"] == "tiny-0"
    assert client.post(URL, json=chat("What is 2+2?", model=MIXTRAL)).status_code == 200


def test_injected_errors_are_a_deterministic_share_of_prompts(
    make_upstream: Callable[..., OfflineUpstream], client_for: Callable[..., TestClient]
) -> None:
    client = client_for(make_upstream(faults=FaultPolicy(error_rate={GPT4: 0.5})))
    prompts = [f"prompt number {i}" for i in range(200)]
    first = [client.post(URL, json=chat(p)).status_code for p in prompts]
    again = [client.post(URL, json=chat(p)).status_code for p in prompts]
    assert first == again
    assert set(first) == {200, 503}
    assert 60 <= first.count(503) <= 140


def test_models_are_listed_with_aliases_and_retrievable(client: TestClient) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    ids = [m["id"] for m in listed["data"]]
    assert ids == [GPT4, MIXTRAL, "small-model", "big-model", "gpt-4"]
    assert listed["data"][-1]["root"] == GPT4
    assert client.get(f"/v1/models/{MIXTRAL}").json()["id"] == MIXTRAL
    assert client.get("/v1/models/gpt-4").json()["root"] == GPT4
    assert_openai_error(client.get("/v1/models/nope"), 404, "model_not_found", "model")


def test_unknown_routes_and_methods_answer_in_openai_shape(client: TestClient) -> None:
    assert_openai_error(client.get("/v1/embeddings"), 404, "unknown_url", None)
    assert_openai_error(client.get(URL), 405, "method_not_allowed", None)


def test_paths_without_the_v1_prefix_work_too(client: TestClient) -> None:
    assert client.post("/chat/completions", json=chat("What is 2+2?")).status_code == 200
    assert client.get("/models").status_code == 200


def test_health(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "live"}
    ready = client.get("/health/ready").json()
    assert ready["status"] == "ready"
    assert ready["prompts"] == 4
    assert ready["models"] == [GPT4, MIXTRAL, "small-model", "big-model"]
    assert ready["tokenizer"] == "approx-bytes/4"
    assert [d["name"] for d in ready["datasets"]] == ["tiny", "scores"]


def test_metrics_count_requests_by_model_known_and_status(client: TestClient) -> None:
    client.post(URL, json=chat("What is 2+2?"))
    client.post(URL, json=chat("What is 2+2?"))
    client.post(URL, json=chat("Never recorded.", model=MIXTRAL))
    client.post(URL, json=chat("What is 2+2?", model="not-served"))
    client.post(URL, content=b"{")
    text = client.get("/metrics").text
    assert (
        f'routeiq_upstream_requests_total{{known="true",model="{GPT4}",status="200"}} 2.0' in text
    )
    assert (
        f'routeiq_upstream_requests_total{{known="false",model="{MIXTRAL}",status="200"}} 1.0'
        in text
    )
    assert 'routeiq_upstream_requests_total{known="-",model="-",status="404"} 1.0' in text
    assert 'routeiq_upstream_requests_total{known="-",model="-",status="400"} 1.0' in text
    assert "not-served" not in text
    assert 'routeiq_upstream_indexed_prompts{dataset="tiny"} 3.0' in text


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "model": _json | st.sampled_from(["gpt-4", MIXTRAL, "big-model"]),
        "messages": _json
        | st.lists(
            st.fixed_dictionaries(
                {"role": _json | st.sampled_from(["user", "system", "assistant"])},
                optional={"content": _json, "name": _json},
            ),
            max_size=3,
        ),
        "stream": _json,
        "stream_options": _json,
        "max_tokens": _json,
        "n": _json,
        "temperature": _json,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_fields | _json)
def test_no_request_body_gets_a_500(client: TestClient, body: Any) -> None:
    response = client.post(URL, json=body)
    assert response.status_code in {200, 400, 404}, response.text
    if response.status_code != 200:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
