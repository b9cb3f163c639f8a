"""What the gateway reports about each request: metrics, span attributes and the
``RouterDecision`` event (built with the contract's typed builder, enqueued, never awaited).

No prompt or response text ever reaches an event or a span: only lengths, keyed hashes (the
query key, when the gateway has one) and (when ``include_embedding`` is on) the query embedding.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import routeiq.contracts.records as records
import routeiq.telemetry as attrs
from opentelemetry import trace
from routeiq.contracts.serde import AvroSerde
from routeiq.routing.querykey import query_key

from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.publisher import Publisher
from routeiq_gateway.routing import Plan
from routeiq_gateway.upstream import UpstreamOutcome


def span_attributes(plan: Plan, outcome: UpstreamOutcome, *, total_ms: float) -> dict[str, Any]:
    """The ``routeiq.*`` attributes of a request's span (the Jaeger view of the decision)."""
    d, o = plan.decision, outcome
    return {
        attrs.ATTR_DECISION_ID: plan.decision_id,
        attrs.ATTR_STRATEGY: d.strategy,
        attrs.ATTR_STRATEGY_VERSION: d.strategy_version,
        attrs.ATTR_ROUTER_VERSION: plan.router_version,
        attrs.ATTR_REQUESTED_MODEL: plan.request.model,
        attrs.ATTR_SELECTED_MODEL: d.selected,
        attrs.ATTR_SELECTION_REASON: d.reason,
        attrs.ATTR_CANDIDATES: [c.name for c in plan.candidates],
        attrs.ATTR_PROPENSITIES: [d.propensities.get(c.name, 0.0) for c in plan.candidates],
        attrs.ATTR_EXPLORATION: d.exploration,
        attrs.ATTR_AB_ARM: d.arm or "",
        attrs.ATTR_DOMAIN: plan.request.domain or "",
        attrs.ATTR_USER_HASH: plan.user_hash or "",
        attrs.ATTR_TEAM_ID: plan.request.team or "",
        attrs.ATTR_QUERY_LENGTH: len(plan.request.text),
        attrs.ATTR_ROUTING_MS: d.embedding_ms + d.strategy_ms,
        attrs.ATTR_EMBEDDING_MS: d.embedding_ms,
        attrs.ATTR_STRATEGY_MS: d.strategy_ms,
        attrs.ATTR_TOTAL_MS: total_ms,
        attrs.ATTR_UPSTREAM_MS: o.upstream_ms,
        attrs.ATTR_STATUS: o.status,
        attrs.ATTR_INPUT_TOKENS: o.input_tokens,
        attrs.ATTR_OUTPUT_TOKENS: o.output_tokens,
        attrs.ATTR_COST_USD: o.cost_usd or 0.0,
        attrs.ATTR_FALLBACK_USED: o.fallback_used,
        attrs.ATTR_ATTEMPTED: o.attempted,
    }


def decision_payload(decision: records.RouterDecision) -> str:
    """The ``routeiq.router_decision.payload`` of a request's span event: the decision record
    as compact JSON, without the query embedding (the contract's payload never carried one;
    ``decision_event`` adds it beside the payload)."""
    record = dataclasses.replace(decision, query_embedding=None).to_record()
    return json.dumps(record, separators=(",", ":"))


def decision_event(decision: records.RouterDecision) -> dict[str, str]:
    """The attributes of a request's ``routeiq.router_decision.v1`` span event: the payload
    and, when the decision carries one, the query embedding as base64 float32 with the name of
    its feature pipeline (so the trainer can label traces from Jaeger into shards)."""
    event = {attrs.ATTR_DECISION_PAYLOAD: decision_payload(decision)}
    if decision.query_embedding is not None:
        vector = np.asarray(decision.query_embedding, dtype="<f4")
        event[attrs.ATTR_DECISION_EMBEDDING] = base64.b64encode(vector.tobytes()).decode()
        event[attrs.ATTR_DECISION_EMBEDDING_MODEL] = decision.embedding_model or ""
    return event


# eq=False: compared by identity, like the publisher it holds.
@dataclass(kw_only=True, eq=False)
class DecisionTelemetry:
    """Records each routed request: metrics, its span and the ``RouterDecision`` event."""

    metrics: GatewayMetrics
    publisher: Publisher | None
    serde: AvroSerde | None
    topic: str
    include_embedding: bool
    query_key: bytes | None = None
    clock: Callable[[], float] = time.time

    @property
    def enabled(self) -> bool:
        """Whether decision events are published (Kafka telemetry configured)."""
        return self.publisher is not None and self.serde is not None

    def routed(self, plan: Plan) -> None:
        """Count a routing decision and how long it took (features + strategy)."""
        d = plan.decision
        self.metrics.routing_latency.labels(d.strategy).observe(time.perf_counter() - plan.started)
        self.metrics.decisions.labels(d.strategy, d.selected, str(d.exploration).lower()).inc()

    def decision(self, plan: Plan, outcome: UpstreamOutcome, span: Any) -> records.RouterDecision:
        """The ``RouterDecision`` event for a served (or failed) request."""
        d, o = plan.decision, outcome
        span_ctx = span.get_span_context() if span is not None else None
        embedding = d.embedding if self.include_embedding else None
        return records.RouterDecision(
            event_id=plan.decision_id,
            trace_id=f"{span_ctx.trace_id:032x}" if span_ctx else "",
            span_id=f"{span_ctx.span_id:016x}" if span_ctx else "",
            timestamp_ms=int(self.clock() * 1000),
            input=records.DecisionInput(
                query_length=len(plan.request.text),
                requested_model=plan.request.model,
                user_id=plan.user_hash,
                team_id=plan.request.team,
            ),
            strategy_name=d.strategy,
            strategy_version=d.strategy_version,
            candidates=[
                records.CandidateDeployment(
                    model_name=c.name,
                    provider=c.provider,
                    score=d.scores.get(c.name),
                    propensity=d.propensities.get(c.name),
                )
                for c in plan.candidates
            ],
            selected_deployment=d.selected,
            selection_reason=d.reason,
            timings=records.Timings(
                total_ms=(time.perf_counter() - plan.started) * 1000.0,
                strategy_ms=d.strategy_ms,
                embedding_ms=d.embedding_ms,
            ),
            outcome=records.DecisionOutcome(
                status=o.status,
                input_tokens=o.input_tokens,
                output_tokens=o.output_tokens,
                error_type=o.error_type,
                cost_usd=o.cost_usd,
                upstream_latency_ms=o.upstream_ms,
            ),
            fallback=records.Fallback(
                used=o.fallback_used,
                attempted_deployments=o.attempted,
                reason=f"served by {o.served_group}" if o.fallback_used else None,
            ),
            router_version=d.router_version,
            exploration=d.exploration,
            ab_arm=d.arm,
            # float32 (no copy when it already is): the serde packs it in one call.
            query_embedding=(
                np.asarray(embedding, dtype=np.float32) if embedding is not None else None
            ),
            embedding_model=d.embedding_model,
            domain=plan.request.domain,
            query_key=query_key(self.query_key, plan.request.text) if self.query_key else None,
        )

    def record(self, plan: Plan, outcome: UpstreamOutcome, span: Any) -> None:
        """Metrics, span attributes, the decision as a span event and as a Kafka event
        (enqueued; never blocks). Both carry the same record, built once."""
        o = outcome
        status = "200" if o.status == "SUCCESS" else o.status.lower()
        self.metrics.requests.labels(o.served_group, status).inc()
        self.metrics.upstream_latency.labels(o.served_group).observe(o.upstream_ms / 1000.0)
        # A span that is not recorded (sampled out, no tracer provider) gets nothing: building
        # the payload for it would cost every request for nothing.
        recording = span is not None and span.is_recording()
        if not recording and not self.enabled:
            return
        decision = self.decision(plan, o, span)
        if recording:
            total_ms = (time.perf_counter() - plan.started) * 1000.0
            span.set_attributes(span_attributes(plan, o, total_ms=total_ms))
            span.add_event(attrs.DECISION_EVENT_NAME, decision_event(decision))
            if o.status != "SUCCESS":
                span.set_status(trace.StatusCode.ERROR, o.error_type or o.status)
        if self.publisher is None or self.serde is None:
            return
        value = self.serde.encode(decision.to_record())
        self.publisher.publish(self.topic, plan.decision_id.encode(), value)
