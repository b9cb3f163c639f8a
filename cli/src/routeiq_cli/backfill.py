"""`routeiq backfill jaeger`: publish past traffic, read from Jaeger, as RouterDecision events.

It reads the gateway's routing spans (``routeiq.route``) from Jaeger's HTTP query API and
publishes each as a ``RouterDecision`` keyed by its decision id, so old traffic flows through
the same labeler. A span's ``routeiq.router_decision.v1`` event carries the record itself (its
JSON payload, as published to Kafka); spans from gateways older than that event are rebuilt
from their ``routeiq.*`` attributes (named in ``routeiq.telemetry``). Traces never carry the
query embedding, so backfilled decisions have none. Publishing a decision twice is harmless:
the labeler keeps one row per decision id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click
import httpx
import routeiq.telemetry as t
from confluent_kafka import Producer
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.records import (
    CandidateDeployment,
    DecisionInput,
    DecisionOutcome,
    Fallback,
    RouterDecision,
    Timings,
)
from routeiq.contracts.topics import ROUTER_DECISIONS
from routeiq.errors import RouteIQError, SerializationError, TransportError
from routeiq.kafka import make_producer

from routeiq_cli.clients import CLIENT_ID, topic_serde
from routeiq_cli.stack.settings import StackSettings

OUTCOME_STATUSES = frozenset({"SUCCESS", "ERROR", "TIMEOUT", "CANCELLED", "UNKNOWN"})


class BackfillError(RouteIQError):
    """Jaeger could not be read (unreachable, an error answer, or not its API's format)."""


class SkipSpan(ValueError):
    """A routing span that cannot become a RouterDecision (the reason says why)."""


def _tag_value(tag: Mapping[str, Any]) -> Any:
    kind = str(tag.get("type", "string")).lower()
    value = tag.get("value")
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "int64":
        return int(value)  # type: ignore[arg-type]
    if kind == "float64":
        return float(value)  # type: ignore[arg-type]
    if kind == "binary":
        return None
    return value


def span_attributes(span: Mapping[str, Any]) -> dict[str, Any]:
    """A Jaeger span's tags, plus the fields of its logs (span events) where no tag has them."""
    attrs: dict[str, Any] = {}
    for tag in span.get("tags") or []:
        attrs[tag["key"]] = _tag_value(tag)
    for log in span.get("logs") or []:
        for tag in log.get("fields") or []:
            attrs.setdefault(tag["key"], _tag_value(tag))
    return attrs


def _as_list(value: Any) -> list[Any]:
    # OTel array attributes reach Jaeger as JSON text (Jaeger has no array tag type).
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SkipSpan(f"array attribute is not JSON: {value!r}") from exc
            if isinstance(parsed, list):
                return parsed
        return [v.strip() for v in text.split(",") if v.strip()]
    return [value]


def _float(value: Any, default: float | None = None) -> float | None:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise SkipSpan(f"not a number: {value!r}") from exc


def _int(value: Any) -> int:
    number = _float(value, 0.0)
    return int(number or 0)


def event_decision(span: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``RouterDecision`` record a span's ``routeiq.router_decision.v1`` event carries
    (Jaeger shows span events as logs, the event's name under the field ``event``); None when
    the span has no such event. ``SkipSpan`` when its payload is not a decision's JSON."""
    for log in span.get("logs") or []:
        fields = {f.get("key"): f.get("value") for f in log.get("fields") or []}
        if t.ATTR_DECISION_PAYLOAD not in fields:
            continue
        payload = fields[t.ATTR_DECISION_PAYLOAD]
        try:
            record = json.loads(payload)
        except (TypeError, json.JSONDecodeError) as exc:
            raise SkipSpan(f"{t.ATTR_DECISION_PAYLOAD} is not JSON") from exc
        if not isinstance(record, dict) or not record.get("event_id"):
            raise SkipSpan(f"{t.ATTR_DECISION_PAYLOAD} has no event_id")
        # The contract's event never carries the embedding: one that does is stripped of it.
        record["query_embedding"] = None
        record["embedding_model"] = None
        return record
    return None


def decision_from_span(span: Mapping[str, Any]) -> dict[str, Any]:
    """One ``routeiq.route`` span → a ``RouterDecision`` record (no embedding: traces never
    carry it): its decision event's payload when it has one, else rebuilt from its attributes.
    Raises ``SkipSpan`` when the span lacks the decision id or the served model."""
    record = event_decision(span)
    if record is not None:
        return record
    attrs = span_attributes(span)
    decision_id = attrs.get(t.ATTR_DECISION_ID)
    if not decision_id:
        raise SkipSpan(f"no {t.ATTR_DECISION_ID}")
    selected = attrs.get(t.ATTR_SELECTED_MODEL)
    if not selected:
        raise SkipSpan(f"no {t.ATTR_SELECTED_MODEL}")
    names = [str(n) for n in _as_list(attrs.get(t.ATTR_CANDIDATES))] or [str(selected)]
    props = _as_list(attrs.get(t.ATTR_PROPENSITIES))
    if len(props) != len(names):
        props = [None] * len(names)
    if selected not in names:
        names.append(str(selected))
        props.append(None)
    status = str(attrs.get(t.ATTR_STATUS) or "UNKNOWN").upper()
    duration_ms = float(span.get("duration", 0)) / 1000
    strategy_ms = _float(attrs.get(t.ATTR_STRATEGY_MS), _float(attrs.get(t.ATTR_ROUTING_MS), 0.0))
    decision = RouterDecision(
        event_id=str(decision_id),
        trace_id=str(span.get("traceID", "")).rjust(32, "0"),
        span_id=str(span.get("spanID", "")).rjust(16, "0"),
        timestamp_ms=int(span["startTime"]) // 1000,
        input=DecisionInput(
            query_length=_int(attrs.get(t.ATTR_QUERY_LENGTH)),
            requested_model=str(attrs.get(t.ATTR_REQUESTED_MODEL) or "unknown"),
            user_id=attrs.get(t.ATTR_USER_HASH),
            team_id=attrs.get(t.ATTR_TEAM_ID),
        ),
        strategy_name=str(attrs.get(t.ATTR_STRATEGY) or "unknown"),
        strategy_version=str(attrs.get(t.ATTR_STRATEGY_VERSION) or "unknown"),
        # Traces carry neither the provider nor the scores of the candidates.
        candidates=[
            CandidateDeployment(model_name=name, provider="unknown", propensity=_float(p))
            for name, p in zip(names, props, strict=True)
        ],
        selected_deployment=str(selected),
        selection_reason=str(attrs.get(t.ATTR_SELECTION_REASON) or "backfill"),
        timings=Timings(
            total_ms=_float(attrs.get(t.ATTR_TOTAL_MS), duration_ms) or 0.0,
            strategy_ms=strategy_ms or 0.0,
            embedding_ms=_float(attrs.get(t.ATTR_EMBEDDING_MS), 0.0) or 0.0,
        ),
        outcome=DecisionOutcome(
            status=status if status in OUTCOME_STATUSES else "UNKNOWN",
            input_tokens=_int(attrs.get(t.ATTR_INPUT_TOKENS)),
            output_tokens=_int(attrs.get(t.ATTR_OUTPUT_TOKENS)),
            error_type=attrs.get("error.type"),
            cost_usd=_float(attrs.get(t.ATTR_COST_USD)),
            upstream_latency_ms=_float(attrs.get(t.ATTR_UPSTREAM_MS)),
        ),
        fallback=Fallback(
            used=bool(attrs.get(t.ATTR_FALLBACK_USED, False)),
            attempted_deployments=[str(a) for a in _as_list(attrs.get(t.ATTR_ATTEMPTED))],
        ),
        router_version=attrs.get(t.ATTR_ROUTER_VERSION),
        exploration=bool(attrs.get(t.ATTR_EXPLORATION, False)),
        ab_arm=attrs.get(t.ATTR_AB_ARM),
        domain=attrs.get(t.ATTR_DOMAIN),
    )
    return decision.to_record()


class JaegerClient:
    """Jaeger's HTTP query API (``GET /api/traces``), as the Jaeger UI uses it."""

    def __init__(self, *, base_url: str, http: httpx.Client) -> None:
        self._base = base_url.rstrip("/")
        self._http = http

    def traces(
        self, *, service: str, operation: str, start_us: int, end_us: int, limit: int
    ) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {
            "service": service,
            "operation": operation,
            "start": start_us,
            "end": end_us,
            "limit": limit,
        }
        try:
            response = self._http.get(f"{self._base}/api/traces", params=params)
            response.raise_for_status()
            body = response.json()
        except httpx.HTTPError as exc:
            raise BackfillError(f"cannot read traces from {self._base}: {exc}") from exc
        except ValueError as exc:
            raise BackfillError(f"{self._base}/api/traces did not answer JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data") or [], list):
            raise BackfillError(f"{self._base}/api/traces: not a Jaeger API answer")
        if body.get("errors"):
            raise BackfillError(f"Jaeger answered errors: {body['errors']}")
        return list(body.get("data") or [])


@dataclass
class BackfillStats:
    traces: int = 0
    spans: int = 0
    published: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def route_spans(
    client: JaegerClient,
    *,
    service: str,
    start_us: int,
    end_us: int,
    page_size: int,
    stats: BackfillStats,
) -> Iterator[dict[str, Any]]:
    """Every ``routeiq.route`` span of ``service`` in [start, end], newest windows first.

    Jaeger returns at most ``limit`` traces per query, and its storage picks which: the
    memory store's are in no time order, so moving the window's end back past the earliest
    trace seen would skip the rest. A full page is therefore never trusted: its window is cut
    in two and each half asked again, until every page comes back short. Traces seen twice
    (a trace spanning two windows) are skipped.
    """
    seen: set[str] = set()
    windows = [(start_us, end_us)]  # a stack: the newer half of a split is taken first
    while windows:
        start, end = windows.pop()
        page = client.traces(
            service=service,
            operation=t.ROUTE_SPAN_NAME,
            start_us=start,
            end_us=end,
            limit=page_size,
        )
        if len(page) >= page_size:
            if end > start:
                middle = (start + end) // 2
                windows += [(start, middle), (middle + 1, end)]
                continue
            reason = f"more than {page_size} traces in one microsecond (raise --page-size)"
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
        for trace in page:
            trace_id = trace.get("traceID", "")
            if trace_id in seen:
                continue
            seen.add(trace_id)
            stats.traces += 1
            for span in trace.get("spans") or []:
                if span.get("operationName") == t.ROUTE_SPAN_NAME:
                    stats.spans += 1
                    yield span


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
            return
        except BufferError:
            # librdkafka's queue is full: let deliveries drain, then try again.
            producer.poll(0.5)


def _parse_end(value: str | None) -> int:
    """End of the range in microseconds: ISO 8601, epoch milliseconds, or now."""
    if value is None:
        return time.time_ns() // 1000
    if value.isdigit():
        return int(value) * 1000
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"expected ISO 8601 or epoch milliseconds, got {value!r}", param_hint="--end"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


@click.group("backfill")
def backfill() -> None:
    """Publish past traffic as RouterDecision events."""


@backfill.command("jaeger")
@click.option("--url", required=True, help="Jaeger query base URL, e.g. http://jaeger:16686")
@click.option("--service", required=True, help="Service name of the gateway in Jaeger.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), required=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--end", default=None, help="End of the range (ISO 8601 or epoch ms; now).")
@click.option("--page-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--topic", default=ROUTER_DECISIONS.name, show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="HTTP seconds.")
def backfill_jaeger(
    url: str,
    service: str,
    hours: float,
    limit: int | None,
    end: str | None,
    page_size: int,
    topic: str,
    timeout: float,
) -> None:
    """Read routing spans from Jaeger and publish them as RouterDecision events."""
    settings = StackSettings.load()
    end_us = _parse_end(end)
    start_us = end_us - int(hours * 3600 * 1_000_000)
    serde = topic_serde(settings, ROUTER_DECISION, topic)
    producer = make_producer(settings.kafka, client_id=CLIENT_ID)
    stats = BackfillStats()
    with httpx.Client(timeout=timeout) as http:
        client = JaegerClient(base_url=url, http=http)
        published: set[str] = set()
        for span in route_spans(
            client,
            service=service,
            start_us=start_us,
            end_us=end_us,
            page_size=page_size,
            stats=stats,
        ):
            try:
                record = decision_from_span(span)
            except SkipSpan as exc:
                reason = str(exc)
                stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
                continue
            if record["event_id"] in published:
                continue
            try:
                value = serde.encode(record)
            except SerializationError as exc:
                reason = f"not a valid RouterDecision: {exc}"
                stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
                continue
            _produce(producer, topic, record["event_id"].encode(), value)
            published.add(record["event_id"])
            stats.published += 1
            if limit is not None and stats.published >= limit:
                break
    if producer.flush(60) != 0:
        raise TransportError(f"not every decision was acknowledged by {topic} within 60s")
    click.echo(
        f"read {stats.traces} traces, {stats.spans} routing spans; published "
        f"{stats.published} decisions to {topic}"
    )
    for reason, count in sorted(stats.skipped.items()):
        click.echo(f"  skipped {count}: {reason}")
