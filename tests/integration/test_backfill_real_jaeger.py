"""`routeiq backfill jaeger` against the stack's own Jaeger, reading real gateway spans.

Requests go through the running stack's gateway, whose spans reach Jaeger over OTLP; once
every request's trace is searchable, the backfill reads them into this test's own topic and
every decision id comes back, carried by the span's ``routeiq.router_decision.v1`` event.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
import routeiq.telemetry as t
from click.testing import CliRunner
from confluent_kafka.schema_registry import Schema
from integration.labeler.helpers import consume
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import ROUTER_DECISIONS
from routeiq_cli.backfill import backfill
from support.jaeger import SERVICE, chat, wait_traced

pytestmark = pytest.mark.integration

REQUESTS = 12
PROMPTS = (
    "What is 17 times 23? Show the steps.",
    "Write a Python function that reverses a linked list.",
    "Name three prime numbers above 100.",
)


def test_backfill_reads_every_decision_from_the_gateway_spans_in_jaeger(
    stack, topic_factory, registry_client
) -> None:
    settings = stack.settings
    start_us = time.time_ns() // 1000 - 1_000_000
    gateway_url = f"http://{settings.host}:{settings.gateway_port}/v1"
    with httpx.Client(timeout=60) as http:
        # Every third request streamed: both paths emit the decision event.
        sent = [
            chat(
                http,
                gateway_url,
                f"{PROMPTS[i % len(PROMPTS)]} (#{i})",
                user=f"jaeger-test-{i % 4}",
                stream=i % 3 == 2,
            )
            for i in range(REQUESTS)
        ]
    ids = {s["decision_id"] for s in sent}
    assert len(ids) == REQUESTS
    spans = wait_traced(settings.jaeger_url, sorted(ids), start_us)

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
        # The stack's gateway logs embeddings, so its spans carry them, and so does the event.
        assert record["query_embedding"]
        assert record["embedding_model"]
        assert len(record["query_embedding"]) == len(traced["query_embedding"])
