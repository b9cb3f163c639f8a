"""`routeiq backfill jaeger` against the stack's own Jaeger, reading real gateway spans.

Requests go through the running stack's gateway, whose spans reach Jaeger over OTLP; once
every request's trace is searchable, the backfill reads them into this test's own topic and
every decision id comes back, carried by the span's ``routeiq.router_decision.v1`` event.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
import routeiq.telemetry as t
from click.testing import CliRunner
from confluent_kafka.schema_registry import Schema
from integration.labeler.helpers import consume, wait_for
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import ROUTER_DECISIONS
from routeiq_cli.backfill import JaegerClient, backfill, event_decision

pytestmark = pytest.mark.integration

SERVICE = "routeiq-gateway"  # the service name the gateway's tracer provider reports
REQUESTS = 12
PROMPTS = (
    "What is 17 times 23? Show the steps.",
    "Write a Python function that reverses a linked list.",
    "Name three prime numbers above 100.",
)


def _chat(http: httpx.Client, url: str, i: int) -> dict[str, str]:
    """One chat request (every third one streamed); the decision headers it answered with."""
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} (#{i})"}],
        "user": f"jaeger-test-{i % 4}",
    }
    if i % 3 == 2:
        body["stream"] = True
    with http.stream("POST", f"{url}/chat/completions", json=body) as r:
        r.read()
        assert r.status_code == 200, r.text
        return {
            "decision_id": r.headers["x-routeiq-decision-id"],
            "model": r.headers["x-routeiq-model"],
            "strategy": r.headers["x-routeiq-strategy"],
        }


def _route_spans(jaeger: JaegerClient, start_us: int) -> dict[str, dict[str, Any]]:
    """The routing spans Jaeger holds since ``start_us``, by the decision id their event
    carries."""
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


def test_backfill_reads_every_decision_from_the_gateway_spans_in_jaeger(
    stack, topic_factory, registry_client
) -> None:
    settings = stack.settings
    start_us = time.time_ns() // 1000 - 1_000_000
    gateway_url = f"http://{settings.host}:{settings.gateway_port}/v1"
    with httpx.Client(timeout=60) as http:
        sent = [_chat(http, gateway_url, i) for i in range(REQUESTS)]
    ids = {s["decision_id"] for s in sent}
    assert len(ids) == REQUESTS

    # The gateway batches its spans (about every 5 s); Jaeger serves them once received.
    with httpx.Client(timeout=10) as http:
        jaeger = JaegerClient(base_url=settings.jaeger_url, http=http)

        def all_traced() -> dict[str, dict[str, Any]] | None:
            spans = _route_spans(jaeger, start_us)
            return spans if ids <= set(spans) else None

        spans = wait_for(
            all_traced, timeout=60, interval=1.0, what="every request's trace in Jaeger"
        )

    for s in sent:
        found = spans[s["decision_id"]]
        span, record = found["span"], found["record"]
        process = found["trace"]["processes"][span["processID"]]
        assert process["serviceName"] == SERVICE
        # The event names the span it rides on, and says what the response said.
        assert record["trace_id"] == span["traceID"].rjust(32, "0")
        assert record["span_id"] == span["spanID"].rjust(16, "0")
        assert record["selected_deployment"] == s["model"]
        assert record["strategy"]["name"] == s["strategy"]
        assert record["outcome"]["status"] == "SUCCESS"
        tags = {tag["key"]: tag["value"] for tag in span["tags"]}
        assert tags[t.ATTR_DECISION_ID] == s["decision_id"]
        assert tags[t.ATTR_SELECTED_MODEL] == s["model"]
        events = [
            field["value"]
            for log in span["logs"]
            for field in log["fields"]
            if field["key"] == "event"
        ]
        assert events == [t.DECISION_EVENT_NAME]

    # Backfill this test's window into this test's own topic.
    spec = topic_factory(ROUTER_DECISIONS)
    registry_client.register_schema(
        spec.value_subject, Schema(ROUTER_DECISION.working_text(), "AVRO")
    )
    end_ms = time.time_ns() // 1_000_000 + 1000
    hours = (end_ms * 1000 - start_us) / 3_600_000_000
    args = ["jaeger", "--url", settings.jaeger_url, "--service", SERVICE, "--hours", str(hours)]
    result = CliRunner().invoke(
        backfill, [*args, "--end", str(end_ms), "--page-size", "5", "--topic", spec.name]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    match = re.search(r"published (\d+) decisions", result.output)
    assert match, result.output
    published = int(match.group(1))
    # Other traffic on the stack in the same window is backfilled too; ours is all there.
    assert published >= REQUESTS, result.output
    serde = AvroSerde.for_contract(
        ROUTER_DECISION, subject=spec.value_subject, resolver=RegistryResolver(registry_client)
    )
    records = {r["event_id"]: (m, r) for m, r in consume(stack, spec.name, serde, count=published)}
    assert ids <= set(records)
    for s in sent:
        message, record = records[s["decision_id"]]
        assert message.key() == s["decision_id"].encode()
        traced = spans[s["decision_id"]]["record"]
        # The backfilled event is the span event's record, field for field.
        assert record == serde.decode(serde.encode(traced))
        assert record["query_embedding"] is None
