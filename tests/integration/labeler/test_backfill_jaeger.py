"""`routeiq backfill jaeger` against recorded Jaeger `/api/traces` answers served locally.

The fixture is a recorded answer of Jaeger's HTTP query API for the gateway's routing spans.
A local HTTP server answers `/api/traces` from it the way Jaeger's query service does (filter
by service, operation and time range, newest first, at most `limit` traces), so the command's
paging runs for real. The published decisions then flow through a real labeler worker.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from click.testing import CliRunner
from confluent_kafka.schema_registry import Schema
from integration.labeler.helpers import consume, shard_rows, wait_for
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import ROUTER_DECISIONS
from routeiq_cli.backfill import BackfillError, backfill

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent / "fixtures" / "jaeger_traces.json"
SERVICE = "routeiq-gateway"
END_MS = 1_763_031_600_000  # 2025-11-13T11:00:00Z, after every recorded trace


def jaeger_answer(recorded: dict, query: dict[str, list[str]]) -> dict:
    """What Jaeger's query service answers for ``query`` over the recorded traces."""
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
    found.sort(key=lambda item: -item[0])
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", queries
    server.shutdown()
    server.server_close()


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
    assert isinstance(result.exception, BackfillError)
    assert "cannot read traces" in str(result.exception)
