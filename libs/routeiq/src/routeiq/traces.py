"""Reading the gateway's routing decisions back from Jaeger.

The gateway's ``routeiq.route`` span carries ``routeiq.*`` attributes and a
``routeiq.router_decision.v1`` span event whose payload is the ``RouterDecision`` record as
JSON (and, when the gateway logs embeddings, the query embedding beside it). This module reads
those spans from Jaeger's HTTP query API and turns each into that record; spans from gateways
older than the event are rebuilt from their attributes (named in ``routeiq.telemetry``).
`routeiq backfill jaeger` publishes the records to Kafka; the trainer's ``prepare_data`` labels
them into training shards.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

import routeiq.telemetry as t
from routeiq.contracts.records import (
    CandidateDeployment,
    DecisionInput,
    DecisionOutcome,
    Fallback,
    RouterDecision,
    Timings,
)
from routeiq.errors import TransportError

OUTCOME_STATUSES = frozenset({"SUCCESS", "ERROR", "TIMEOUT", "CANCELLED", "UNKNOWN"})


class JaegerError(TransportError):
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


def _embedding(fields: Mapping[str, Any]) -> tuple[list[float] | None, str | None]:
    """The query embedding and its pipeline from a decision event's fields; (None, None) when
    the event has none. ``SkipSpan`` when it is not base64 of float32 values."""
    text = fields.get(t.ATTR_DECISION_EMBEDDING)
    if not text:
        return None, None
    try:
        packed = base64.b64decode(text, validate=True)
    except (TypeError, ValueError) as exc:
        raise SkipSpan(f"{t.ATTR_DECISION_EMBEDDING} is not base64") from exc
    if not packed or len(packed) % 4:
        raise SkipSpan(f"{t.ATTR_DECISION_EMBEDDING} is not float32 values")
    vector = np.frombuffer(packed, dtype="<f4").tolist()
    return vector, fields.get(t.ATTR_DECISION_EMBEDDING_MODEL) or None


def event_decision(span: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``RouterDecision`` record a span's ``routeiq.router_decision.v1`` event carries,
    with the query embedding when the event has one (Jaeger shows span events as logs, the
    event's name under the field ``event``); None when the span has no such event.
    ``SkipSpan`` when its payload is not a decision's JSON."""
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
        # The payload never carries the embedding (one that does is stripped of it); the event
        # may carry it beside the payload.
        record["query_embedding"], record["embedding_model"] = _embedding(fields)
        return record
    return None


def decision_from_span(span: Mapping[str, Any]) -> dict[str, Any]:
    """One ``routeiq.route`` span → a ``RouterDecision`` record: its decision event's when it
    has one (with the embedding when the event carries it), else rebuilt from its attributes
    (without an embedding).
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
            raise JaegerError(f"cannot read traces from {self._base}: {exc}") from exc
        except ValueError as exc:
            raise JaegerError(f"{self._base}/api/traces did not answer JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data") or [], list):
            raise JaegerError(f"{self._base}/api/traces: not a Jaeger API answer")
        if body.get("errors"):
            raise JaegerError(f"Jaeger answered errors: {body['errors']}")
        return list(body.get("data") or [])


@dataclass
class TraceStats:
    """What a read of Jaeger saw: traces, routing spans, decisions taken, spans skipped (why)."""

    traces: int = 0
    spans: int = 0
    decisions: int = 0  # distinct decisions read
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass(frozen=True)
class TraceQuery:
    """Which routing spans to read: the gateway's service name in Jaeger, a time range in
    microseconds, and how many traces to ask for at once."""

    service: str
    start_us: int
    end_us: int
    page_size: int = 500


def route_spans(
    client: JaegerClient, query: TraceQuery, stats: TraceStats
) -> Iterator[dict[str, Any]]:
    """Every ``routeiq.route`` span of the query's service in its range, newest windows first.

    Jaeger returns at most ``limit`` traces per query, and its storage picks which: the
    memory store's are in no time order, so moving the window's end back past the earliest
    trace seen would skip the rest. A full page is therefore never trusted: its window is cut
    in two and each half asked again, until every page comes back short. Traces seen twice
    (a trace spanning two windows) are skipped.
    """
    seen: set[str] = set()
    page_size = query.page_size
    windows = [(query.start_us, query.end_us)]  # a stack: the newer half of a split first
    while windows:
        start, end = windows.pop()
        page = client.traces(
            service=query.service,
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
            stats.skip(f"more than {page_size} traces in one microsecond (raise the page size)")
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


def read_decisions(
    client: JaegerClient, query: TraceQuery, stats: TraceStats
) -> Iterator[dict[str, Any]]:
    """Every routing decision the query's service made in its range, once per decision id.
    Spans that cannot become a decision are counted in ``stats.skipped`` under their reason."""
    seen: set[str] = set()
    for span in route_spans(client, query, stats):
        try:
            record = decision_from_span(span)
        except SkipSpan as exc:
            stats.skip(str(exc))
            continue
        if record["event_id"] in seen:
            continue
        seen.add(record["event_id"])
        stats.decisions += 1
        yield record
