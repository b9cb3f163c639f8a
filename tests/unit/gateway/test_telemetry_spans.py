"""Every request's span, captured by an in-memory exporter: the ``routeiq.*`` attributes and the
``routeiq.router_decision.v1`` span event whose payload is the decision published to Kafka."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import routeiq.telemetry as attrs
from litellm.exceptions import Timeout
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once
from routeiq.contracts.records import (
    CandidateDeployment,
    DecisionInput,
    DecisionOutcome,
    RouterDecision,
    Timings,
)
from routeiq.routing.querykey import query_key
from routeiq_gateway.api.app import create_app
from routeiq_gateway.gateway import Gateway
from routeiq_gateway.telemetry import decision_event, decision_payload
from starlette.testclient import TestClient

from .conftest import ADMIN_KEY, CollectingPublisher, offline_gateway
from .test_serving import BODY, FailingUpstream, recorded, serve

CODE_PROMPT = "Please write a Python function def add(a, b) that adds two numbers"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """A global tracer provider of this test's own, recording every span in memory.

    The gateway takes its tracer from OpenTelemetry's global provider, which the API lets a
    process set once; like OpenTelemetry's own test base (``reset_trace_globals``), the
    fixture resets that guard around the test and restores the previous provider after."""
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    yield spans
    provider.shutdown()
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


@pytest.fixture
def traced(
    exporter: InMemorySpanExporter, model_file: Path
) -> Iterator[tuple[TestClient, Gateway, CollectingPublisher, InMemorySpanExporter]]:
    publisher = CollectingPublisher()
    gateway = offline_gateway(model_file, publisher)
    with TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)) as client:
        yield client, gateway, publisher, exporter


def _content(text: str, *, stream: bool) -> str:
    """The answer's text, from a completion or from a stream's frames."""
    if not stream:
        return json.loads(text)["choices"][0]["message"]["content"]
    frames = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    return "".join(c["delta"].get("content") or "" for f in frames for c in f["choices"])


def _route_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == attrs.ROUTE_SPAN_NAME]
    return span


def _payload(span: ReadableSpan) -> dict:
    (event,) = [e for e in span.events if e.name == attrs.DECISION_EVENT_NAME]
    assert event.attributes is not None
    assert set(event.attributes) == {attrs.ATTR_DECISION_PAYLOAD}
    payload = event.attributes[attrs.ATTR_DECISION_PAYLOAD]
    assert isinstance(payload, str)
    return json.loads(payload)


@pytest.mark.parametrize("stream", [False, True])
def test_each_request_span_carries_the_attributes_and_the_published_decision(
    traced, stream: bool
) -> None:
    client, gateway, publisher, exporter = traced
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": CODE_PROMPT}],
        "user": "alice",
        "stream": stream,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    decision_id = r.headers["x-routeiq-decision-id"]

    span = _route_span(exporter)
    assert span.attributes is not None
    assert span.attributes[attrs.ATTR_DECISION_ID] == decision_id
    assert span.attributes[attrs.ATTR_SELECTED_MODEL] == "big"  # the policy's code rule
    assert span.attributes[attrs.ATTR_STRATEGY] == "policy"
    assert span.attributes[attrs.ATTR_STATUS] == "SUCCESS"
    assert tuple(span.attributes[attrs.ATTR_CANDIDATES]) == ("big", "small")  # type: ignore[arg-type]
    assert span.attributes[attrs.ATTR_QUERY_LENGTH] == len(CODE_PROMPT)

    # The event's payload is the very record published to Kafka (which, with embeddings off
    # here, has none either), and it names the span it rides on.
    payload = _payload(span)
    [(_, key, value)] = publisher.records
    assert key == decision_id.encode()
    serde = gateway.decision_serde
    assert serde.decode(serde.encode(payload)) == serde.decode(value)
    assert payload["event_id"] == decision_id
    assert payload["trace_id"] == format(span.context.trace_id, "032x")
    assert payload["span_id"] == format(span.context.span_id, "016x")
    assert payload["query_embedding"] is None

    # No prompt or response text anywhere in the span.
    assert _content(text, stream=stream) == "The answer is 4."
    everything = json.dumps(dict(span.attributes)) + json.dumps(payload)
    assert "def add" not in everything
    assert "The answer" not in everything


def test_a_timed_out_request_span_is_an_error_with_the_decision_event(
    exporter: InMemorySpanExporter, model_file: Path
) -> None:
    timeout = Timeout("too slow", model="small", llm_provider="openai")
    client, gateway, publisher = serve(model_file, FailingUpstream(timeout))
    r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 504
    span = _route_span(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[attrs.ATTR_STATUS] == "TIMEOUT"
    payload = _payload(span)
    assert payload["outcome"]["status"] == "TIMEOUT"
    assert payload["outcome"]["error_type"] == "Timeout"
    serde = gateway.decision_serde
    assert serde.decode(serde.encode(payload)) == recorded(gateway, publisher)


def test_the_payload_never_carries_the_embedding() -> None:
    decision = RouterDecision(
        event_id="d-1",
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "2",
        timestamp_ms=1_700_000_000_000,
        input=DecisionInput(query_length=12, requested_model="auto", user_id="u-hash"),
        strategy_name="knn",
        strategy_version="3",
        candidates=[CandidateDeployment(model_name="big", provider="openai", propensity=1.0)],
        selected_deployment="big",
        selection_reason="learned",
        timings=Timings(total_ms=3.0, strategy_ms=1.0, embedding_ms=2.0),
        outcome=DecisionOutcome(status="SUCCESS", input_tokens=5, output_tokens=7),
        query_embedding=np.arange(384, dtype=np.float32),
        embedding_model="minilm",
    )
    payload = json.loads(decision_payload(decision))
    assert payload["query_embedding"] is None
    assert payload["embedding_model"] is None  # named only alongside its vector
    expected = decision.to_record() | {"query_embedding": None, "embedding_model": None}
    assert payload == expected
    assert len(decision_payload(decision)) < 2000  # no 384 floats in it

    # The event carries the vector beside the payload, exactly (base64 of float32), named by
    # its pipeline; a decision without one gets the payload alone.
    event = decision_event(decision)
    assert event[attrs.ATTR_DECISION_PAYLOAD] == decision_payload(decision)
    vector = np.frombuffer(base64.b64decode(event[attrs.ATTR_DECISION_EMBEDDING]), dtype="<f4")
    np.testing.assert_array_equal(vector, np.arange(384, dtype=np.float32))
    assert event[attrs.ATTR_DECISION_EMBEDDING_MODEL] == "minilm"
    bare = dataclasses.replace(decision, query_embedding=None)
    assert set(decision_event(bare)) == {attrs.ATTR_DECISION_PAYLOAD}


def test_an_unrecorded_span_gets_no_event_and_the_decision_is_still_published(
    model_file: Path,
) -> None:
    # No SDK provider at all (sampled out looks the same): spans are non-recording.
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    try:
        publisher = CollectingPublisher()
        gateway = offline_gateway(model_file, publisher)
        app = create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)
        with TestClient(app) as client:
            r = client.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert r.status_code == 200
        [(_, key, value)] = publisher.records
        record = gateway.decision_serde.decode(value)
        assert record["event_id"] == r.headers["x-routeiq-decision-id"] == key.decode()
        assert record["trace_id"] == "0" * 32  # an invalid span context, not a real trace
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def test_with_a_query_key_the_decision_carries_the_texts_keyed_hash_never_the_text(
    exporter: InMemorySpanExporter, model_file: Path
) -> None:
    key = b"q" * 32
    publisher = CollectingPublisher()
    gateway = dataclasses.replace(offline_gateway(model_file, publisher), query_key=key)
    body = {"model": "auto", "messages": [{"role": "user", "content": CODE_PROMPT}]}
    with TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)) as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    [(_, _, value)] = publisher.records
    published = gateway.decision_serde.decode(value)
    # The key the trainer computes for the same text from the operator's prompt store.
    assert published["query_key"] == query_key(key, CODE_PROMPT)
    assert _payload(_route_span(exporter))["query_key"] == published["query_key"]
    assert "def add" not in json.dumps(published, default=str)
