"""`routeiq backfill jaeger` against recorded Jaeger `/api/traces` answers served locally.

The fixture is a recorded answer of Jaeger's HTTP query API for the gateway's routing spans.
A local HTTP server answers `/api/traces` from it the way Jaeger's query service does (filter
by service, operation and time range, newest first, at most `limit` traces), so the command's
paging runs for real. The published decisions then flow through a real labeler worker.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from confluent_kafka.schema_registry import Schema
from integration.labeler.helpers import consume, shard_rows, wait_for
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import ROUTER_DECISIONS
from routeiq.telemetry import (
    ATTR_DECISION_EMBEDDING,
    ATTR_DECISION_EMBEDDING_MODEL,
    ATTR_DECISION_PAYLOAD,
    DECISION_EVENT_NAME,
)
from routeiq.traces import (
    JaegerClient,
    JaegerError,
    SkipSpan,
    TraceQuery,
    TraceStats,
    decision_from_span,
    route_spans,
)
from routeiq_cli.backfill import backfill
from support.httpd import serving

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent / "fixtures" / "jaeger_traces.json"
SERVICE = "routeiq-gateway"
END_MS = 1_763_031_600_000  # 2025-11-13T11:00:00Z, after every recorded trace


def jaeger_answer(
    recorded: dict, query: dict[str, list[str]], *, newest_first: bool = True
) -> dict:
    """What Jaeger's query service answers for ``query`` over the recorded traces (its memory
    store picks which traces fill a page in no time order: ``newest_first=False`` stands in
    for that with the oldest)."""
    service = query["service"][0]
    operation = query.get("operation", [None])[0]
    start, end = int(query["start"][0]), int(query["end"][0])
    limit = int(query.get("limit", ["20"])[0])
    found = []
    for trace in recorded["data"]:
        processes = trace["processes"]
        hits = [
            s["startTime"]
            for s in trace["spans"]
            if processes[s["processID"]]["serviceName"] == service
            and (operation is None or s["operationName"] == operation)
            and start <= s["startTime"] <= end
        ]
        if hits:
            found.append((max(hits), trace))
    found.sort(key=lambda item: -item[0] if newest_first else item[0])
    return {
        "data": [trace for _, trace in found[:limit]],
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }


@pytest.fixture
def jaeger() -> Iterator[tuple[str, list[dict]]]:
    """A local Jaeger query API over the fixture; yields its URL and the queries it got."""
    recorded = json.loads(FIXTURE.read_text())
    queries: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/api/traces":
                self.send_error(404)
                return
            query = parse_qs(url.query)
            queries.append(query)
            body = json.dumps(jaeger_answer(recorded, query)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    with serving(Handler) as url:
        yield url, queries


def _route_spans() -> dict[str, dict]:
    """Recorded routing spans by decision id (the one without an id is left out)."""
    out = {}
    for trace in json.loads(FIXTURE.read_text())["data"]:
        for span in trace["spans"]:
            tags = {t["key"]: t["value"] for t in span["tags"]}
            if span["operationName"] == "routeiq.route" and "routeiq.decision_id" in tags:
                out[tags["routeiq.decision_id"]] = span
    return out


def test_backfill_publishes_routing_spans_as_decisions_that_the_labeler_labels(
    stack, jaeger, labeler_topics, labeler_factory, store, bucket
) -> None:
    url, queries = jaeger
    topic = labeler_topics.decisions.name
    result = CliRunner().invoke(
        backfill,
        [
            "jaeger",
            "--url",
            url,
            "--service",
            SERVICE,
            "--hours",
            "2",
            "--end",
            str(END_MS),
            "--page-size",
            "3",
            "--topic",
            topic,
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "read 8 traces, 8 routing spans; published 7 decisions" in result.output
    assert "skipped 1: no routeiq.decision_id" in result.output
    # Paging: 8 traces with pages of 3, each query ending where the previous page began.
    assert len(queries) >= 3
    assert all(q["operation"] == ["routeiq.route"] and q["service"] == [SERVICE] for q in queries)
    assert [int(q["end"][0]) for q in queries] == sorted(
        (int(q["end"][0]) for q in queries), reverse=True
    )

    spans = _route_spans()
    published = consume(stack, topic, labeler_topics.serdes["decisions"], count=7)
    records = {r["event_id"]: (m, r) for m, r in published}
    assert set(records) == set(spans)
    for decision_id, (message, record) in records.items():
        span = spans[decision_id]
        tags = {t["key"]: t["value"] for t in span["tags"]}
        for log in span["logs"]:
            tags.update({f["key"]: f["value"] for f in log["fields"]})
        assert message.key() == decision_id.encode()
        assert int(record["timestamp"].timestamp() * 1000) == span["startTime"] // 1000
        assert record["trace_id"] == span["traceID"]
        assert record["span_id"] == span["spanID"]
        assert record["selected_deployment"] == tags["routeiq.selected_model"]
        assert [c["model_name"] for c in record["candidate_deployments"]] == [
            "gpt-4-1106-preview",
            "mixtral-8x7b-instruct-v0.1",
        ]
        assert [c["propensity"] for c in record["candidate_deployments"]] == json.loads(
            tags["routeiq.propensities"]
        )
        assert record["outcome"]["status"] == tags["routeiq.status"]
        assert record["outcome"]["input_tokens"] == tags["routeiq.input_tokens"]
        assert record["outcome"]["cost_usd"] == pytest.approx(tags["routeiq.cost_usd"])
        assert record["exploration"] == tags["routeiq.exploration"]
        assert record["router_version"] == tags["routeiq.router_version"]
        assert record["fallback"]["used"] == tags["routeiq.fallback_used"]
        assert record["query_embedding"] is None  # traces never carry it
    statuses = sorted(r["outcome"]["status"] for _, r in published)
    assert statuses.count("TIMEOUT") == 1

    # The same labeler turns them into rows: one per decision, labelled from the outcome.
    worker = labeler_factory(window_size_s=60, allowed_lateness_s=0, quality_source="outcome")
    worker.wait_ready()

    def written():
        rows = [r for rs in shard_rows(store, bucket).values() for r in rs]
        return rows if len(rows) >= len(spans) else None

    rows = wait_for(written, timeout=45, what="the backfilled decisions in shards")
    assert sorted(r["decision_id"] for r in rows) == sorted(spans)
    assert all(r["embedding"] is None for r in rows)
    timeout_row = next(r for r in rows if r["status"] == "TIMEOUT")
    assert timeout_row["quality"] == 0.0


def test_backfill_limit_and_an_unreachable_jaeger(stack, jaeger, topic_factory, registry_client):
    url, _ = jaeger
    spec = topic_factory(ROUTER_DECISIONS)
    registry_client.register_schema(
        spec.value_subject, Schema(ROUTER_DECISION.working_text(), "AVRO")
    )
    args = ["jaeger", "--service", SERVICE, "--hours", "2", "--end", "2025-11-13T11:00:00Z"]
    result = CliRunner().invoke(
        backfill, [*args, "--url", url, "--limit", "2", "--topic", spec.name]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "published 2 decisions" in result.output
    serde = AvroSerde.for_contract(
        ROUTER_DECISION, subject=spec.value_subject, resolver=RegistryResolver(registry_client)
    )
    assert len(consume(stack, spec.name, serde, count=3, timeout=8)) == 2

    result = CliRunner().invoke(
        backfill, [*args, "--url", "http://127.0.0.1:9", "--topic", spec.name, "--timeout", "2"]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, JaegerError)
    assert "cannot read traces" in str(result.exception)


def _with_event(span: dict, payload: str, **extra: str) -> dict:
    """``span`` with a ``routeiq.router_decision.v1`` event, as Jaeger shows span events."""
    fields = [
        {"key": "event", "type": "string", "value": DECISION_EVENT_NAME},
        {"key": ATTR_DECISION_PAYLOAD, "type": "string", "value": payload},
        *({"key": k, "type": "string", "value": v} for k, v in extra.items()),
    ]
    return {**span, "logs": [*span["logs"], {"timestamp": span["startTime"], "fields": fields}]}


def test_a_spans_decision_event_wins_over_its_attributes_and_a_broken_one_is_skipped() -> None:
    span = next(iter(_route_spans().values()))
    rebuilt = decision_from_span(span)  # an old span: from its attributes
    assert rebuilt["candidate_deployments"][0]["provider"] == "unknown"
    carried = {
        **rebuilt,
        "selection_reason": "carried by the event",
        "candidate_deployments": [
            {**c, "provider": "openai", "score": 0.5} for c in rebuilt["candidate_deployments"]
        ],
        "query_embedding": [0.25, 0.5],
        "embedding_model": "minilm",
    }
    # The event's record as it is, except an embedding inside the payload, which the payload
    # never carries ...
    assert decision_from_span(_with_event(span, json.dumps(carried))) == {
        **carried,
        "query_embedding": None,
        "embedding_model": None,
    }
    # ... but the event may carry beside it, as base64 float32 with its pipeline's name.
    vector = np.array([0.25, -1.5, 3.0], dtype="<f4")
    packed = {
        ATTR_DECISION_EMBEDDING: base64.b64encode(vector.tobytes()).decode(),
        ATTR_DECISION_EMBEDDING_MODEL: "static-256",
    }
    assert decision_from_span(_with_event(span, json.dumps(carried), **packed)) == {
        **carried,
        "query_embedding": [0.25, -1.5, 3.0],
        "embedding_model": "static-256",
    }
    broken = {**packed, ATTR_DECISION_EMBEDDING: "not base64!"}
    with pytest.raises(SkipSpan, match="is not base64"):
        decision_from_span(_with_event(span, json.dumps(carried), **broken))
    ragged = {**packed, ATTR_DECISION_EMBEDDING: base64.b64encode(b"12345").decode()}
    with pytest.raises(SkipSpan, match="not float32"):
        decision_from_span(_with_event(span, json.dumps(carried), **ragged))
    with pytest.raises(SkipSpan, match="is not JSON"):
        decision_from_span(_with_event(span, "{not json"))
    with pytest.raises(SkipSpan, match="has no event_id"):
        decision_from_span(_with_event(span, json.dumps({**carried, "event_id": ""})))


@pytest.mark.parametrize("newest_first", [True, False])
def test_paging_finds_every_trace_whichever_traces_fill_a_page(newest_first: bool) -> None:
    recorded = json.loads(FIXTURE.read_text())

    def answer(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        return httpx.Response(200, json=jaeger_answer(recorded, query, newest_first=newest_first))

    stats = TraceStats()
    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        spans = list(
            route_spans(
                JaegerClient(base_url="http://jaeger", http=http),
                TraceQuery(
                    SERVICE,
                    start_us=(END_MS - 2 * 3_600_000) * 1000,
                    end_us=END_MS * 1000,
                    page_size=3,
                ),
                stats,
            )
        )
    assert (stats.traces, stats.spans) == (8, 8)
    assert sorted(s["spanID"] for s in spans) == sorted(
        s["spanID"]
        for trace in recorded["data"]
        for s in trace["spans"]
        if s["operationName"] == "routeiq.route"
    )
