"""The gateway's logic, apart from HTTP: validate → route → call upstream → log the decision.

``Gateway.plan`` turns a chat-completion body into a routing decision (strategy, propensities,
embedding); ``Gateway.complete`` / ``Gateway.stream`` call the upstream and then ``record``
the ``RouterDecision`` event (enqueued, never awaited on Kafka) and the OTel span attributes.
No prompt or response text ever reaches an event: only lengths, hashes and embeddings.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import numpy as np
import routeiq.telemetry as attrs
from litellm.exceptions import Timeout as LiteLLMTimeout
from opentelemetry import trace
from routeiq.contracts.serde import AvroSerde
from routeiq.routing.engine import Decision, RoutingEngine, StrategyRegistry
from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput

from routeiq_gateway.config import ModelFile
from routeiq_gateway.errors import BadRequest, NotFound, UpstreamFailed
from routeiq_gateway.features import FeatureService
from routeiq_gateway.ids import DecisionIds
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.upstream import PASSTHROUGH, Upstream, UpstreamOutcome

T = TypeVar("T")

_ROLES = {"system", "user", "assistant", "tool", "function", "developer"}


class Publisher(Protocol):
    """Where encoded events go (``EventPublisher``: Kafka with a disk spool)."""

    @property
    def state(self) -> str: ...

    @property
    def spool_depth(self) -> int: ...

    last_error: str | None

    def publish(self, topic: str, key: bytes, value: bytes) -> None: ...


_SOURCE_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_.:")


@dataclass
class Plan:
    """One request's routing decision and what is needed to serve and log it."""

    decision_id: str
    requested_model: str
    group: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    stream: bool
    decision: Decision
    candidates: list[ModelOption]
    query_length: int
    user_hash: str | None
    team_id: str | None
    domain: str | None
    started: float
    span: Any = None
    outcome: UpstreamOutcome | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def router_version(self) -> str:
        return self.decision.router_version or "none"


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text RouteIQ routes on: the last user message (string or text parts)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
    return ""


def validate_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("'messages' is required", param="messages", code="missing_messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise BadRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        if m.get("role") not in _ROLES:
            raise BadRequest(
                f"messages[{i}].role must be one of {sorted(_ROLES)}", param=f"messages[{i}].role"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"messages[{i}].content must be a string or an array of parts",
                param=f"messages[{i}].content",
            )
    return messages


class Gateway:
    def __init__(
        self,
        *,
        model_file: ModelFile,
        engine: RoutingEngine,
        holder: BundleHolder,
        upstream: Upstream,
        embeddings: FeatureService | None,
        publisher: Publisher | None,
        decision_serde: AvroSerde | None,
        feedback_serde: AvroSerde | None,
        decisions_topic: str,
        feedback_topic: str,
        ids: DecisionIds,
        metrics: GatewayMetrics,
        user_salt: bytes,
        include_embedding: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model_file = model_file
        self.engine = engine
        self.registry: StrategyRegistry = engine.registry
        self.holder = holder
        self.upstream = upstream
        self.embeddings = embeddings
        self.publisher = publisher
        self._decision_serde = decision_serde
        self._feedback_serde = feedback_serde
        self.decisions_topic = decisions_topic
        self.feedback_topic = feedback_topic
        self.ids = ids
        self.metrics = metrics
        self._salt = user_salt
        self.include_embedding = include_embedding and embeddings is not None
        self._clock = clock
        self._tracer = trace.get_tracer("routeiq.gateway")
        rq = model_file.routeiq
        self.aliases = set(rq.route_aliases)
        self.groups = model_file.model_groups
        self.options = {
            g: ModelOption(
                name=g,
                provider=model_file.provider(g),
                input_price=model_file.prices(g)[0],
                output_price=model_file.prices(g)[1],
                quality_rank=rq.candidates[g].quality_rank if g in rq.candidates else 0.0,
                expected_output_tokens=(
                    rq.candidates[g].expected_output_tokens if g in rq.candidates else 256
                ),
            )
            for g in self.groups
        }
        self.candidate_names = model_file.candidate_groups

    @property
    def telemetry_enabled(self) -> bool:
        return self.publisher is not None and self._decision_serde is not None

    # ------------------------------------------------------------ routing

    def _embed(self, text: str) -> Any:
        assert self.embeddings is not None
        started = time.perf_counter()
        vector = self.embeddings.embed(text)
        self.metrics.embedding_latency.observe(time.perf_counter() - started)
        return vector

    def _featurize(self, featurizer: Any, text: str) -> Any:
        assert self.embeddings is not None
        started = time.perf_counter()
        vector = self.embeddings.featurize(featurizer, text)
        self.metrics.embedding_latency.observe(time.perf_counter() - started)
        return vector

    async def _off_loop_if_slow(self, work: Callable[[], T]) -> T:
        """Run ``work`` (a routing decision) in the event loop when its features are fast,
        in a worker thread when they are MiniLM's (tens of ms).

        A fraction of a millisecond of numpy is cheaper inline than handed to a thread: the
        handoff costs about as much, and the worker then waits for the GIL behind the event
        loop (py-spy under load: features took 5x longer in a thread than in isolation).
        """
        bundle = self.holder.get()
        slow = self.embeddings is not None and not self.embeddings.fast(
            bundle.featurizer if bundle is not None else None
        )
        if slow:
            return await anyio.to_thread.run_sync(work)
        return work()

    def route_input(
        self, text: str, *, model: str, unit_key: str, domain: str | None
    ) -> RouteInput:
        """The strategies' view of one request (features computed on demand)."""
        features = self.embeddings
        return RouteInput(
            text,
            requested_model=model,
            unit_key=unit_key,
            domain=domain,
            embed=self._embed if features is not None else None,
            featurize=self._featurize if features is not None else None,
            features_id=features.default_id if features is not None else None,
        )

    def hash_user(self, user: str | None) -> str | None:
        if not user:
            return None
        return hmac.new(self._salt, user.encode(), hashlib.sha256).hexdigest()[:32]

    async def plan(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Plan:
        """Validate a chat-completion body and decide which model group serves it."""
        started = time.perf_counter()
        model = body.get("model", "auto")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' must be a non-empty string", param="model")
        messages = validate_messages(body)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("'stream' must be a boolean", param="stream")
        params = {k: v for k, v in body.items() if k in PASSTHROUGH}
        text = last_user_text(messages)
        user = body.get("user") if isinstance(body.get("user"), str) else None
        user = headers.get("x-routeiq-user") or user
        team = headers.get("x-routeiq-team") or None
        domain = headers.get("x-routeiq-domain") or None
        decision_id = self.ids.new()
        unit_key = user or team or decision_id
        if model in self.aliases:
            candidates = [self.options[g] for g in self.candidate_names]
            request = self.route_input(text, model=model, unit_key=unit_key, domain=domain)
            decision = await self._off_loop_if_slow(
                lambda: self.engine.route(
                    request, candidates, want_embedding=self.include_embedding
                )
            )
        elif model in self.options:
            candidates = [self.options[model]]
            embedding, embedding_model = None, None
            if self.include_embedding:
                # Logged with the active router's features, as routed requests are.
                request = self.route_input(text, model=model, unit_key=unit_key, domain=domain)
                bundle = self.holder.get()
                active = bundle.featurizer if bundle is not None else None
                embedding = await self._off_loop_if_slow(lambda: request.embedding(active))
                found = request.peek_embedding(active)
                embedding_model = found[0] if found is not None else None
            decision = Decision(
                selected=model,
                reason="model requested by name",
                strategy="direct",
                strategy_version="direct/1",
                arm=None,
                exploration=False,
                propensities={model: 1.0},
                scores={},
                router_version=None,
                embedding=embedding,
                embedding_ms=0.0,
                strategy_ms=0.0,
                embedding_model=embedding_model,
            )
        else:
            raise NotFound(
                f"model {model!r} is not served here; use one of {sorted(self.aliases)} to let "
                f"RouteIQ choose, or one of {self.groups}",
                param="model",
                code="model_not_found",
            )
        self.metrics.routing_latency.labels(decision.strategy).observe(
            time.perf_counter() - started
        )
        self.metrics.decisions.labels(
            decision.strategy, decision.selected, str(decision.exploration).lower()
        ).inc()
        return Plan(
            decision_id=decision_id,
            requested_model=model,
            group=decision.selected,
            messages=messages,
            params=params,
            stream=stream,
            decision=decision,
            candidates=candidates,
            query_length=len(text),
            user_hash=self.hash_user(user),
            team_id=team,
            domain=domain,
            started=started,
        )

    # ------------------------------------------------------------ serving

    async def complete(self, plan: Plan) -> Any:
        """Serve a non-streaming request; the decision is recorded whatever happens."""
        with self._tracer.start_as_current_span(attrs.ROUTE_SPAN_NAME) as span:
            plan.span = span
            try:
                response, outcome = await self.upstream.complete(
                    plan.group, plan.messages, plan.params
                )
            except Exception as exc:
                plan.outcome = self._failed(plan, exc)
                self.record(plan)
                raise _as_gateway_error(exc) from exc
            plan.outcome = outcome
            self.record(plan)
            return response

    async def stream(self, plan: Plan) -> AsyncGenerator[bytes, None]:
        """Serve a streaming request as SSE bytes; recorded when the stream ends."""
        outcome = UpstreamOutcome(served_group=plan.group, upstream_ms=0.0)
        plan.outcome = outcome
        span = self._tracer.start_span(attrs.ROUTE_SPAN_NAME)
        plan.span = span
        completed = False
        try:
            async for chunk in self.upstream.stream(
                plan.group, plan.messages, plan.params, outcome
            ):
                yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
            completed = True
        except Exception as exc:  # noqa: BLE001 - recorded, then reported in-stream
            plan.outcome = self._failed(plan, exc)
            err = _as_gateway_error(exc)
            yield b"data: " + _json(err.body()) + b"\n\n"
        finally:
            # The client went away mid-stream (the generator was closed): say so.
            if not completed and plan.outcome is not None and plan.outcome.status == "SUCCESS":
                plan.outcome.status = "CANCELLED"
            self.record(plan)
            span.end()

    async def open_stream(self, plan: Plan) -> AsyncIterator[bytes]:
        """Start the stream and fail fast (before any byte is sent) if the upstream refuses."""
        agen = self.stream(plan)
        first = await agen.__anext__()
        if (
            first.startswith(b'data: {"error"')
            and plan.outcome is not None
            and plan.outcome.status != "SUCCESS"
        ):
            await agen.aclose()
            raise _last_error(plan)

        async def chained() -> AsyncIterator[bytes]:
            yield first
            async for item in agen:
                yield item

        return chained()

    def _failed(self, plan: Plan, exc: BaseException) -> UpstreamOutcome:
        timeout = isinstance(exc, LiteLLMTimeout | TimeoutError)
        plan.extra["error"] = exc
        return UpstreamOutcome(
            served_group=plan.group,
            upstream_ms=(time.perf_counter() - plan.started) * 1000.0,
            status="TIMEOUT" if timeout else "ERROR",
            error_type=type(exc).__name__,
            attempted=[plan.group],
        )

    # ------------------------------------------------------------ telemetry

    def decision_event(self, plan: Plan) -> dict[str, Any]:
        """The ``RouterDecision`` record for a served (or failed) request."""
        d, o = plan.decision, plan.outcome
        assert o is not None
        span_ctx = plan.span.get_span_context() if plan.span is not None else None
        total_ms = (time.perf_counter() - plan.started) * 1000.0
        embedding = d.embedding if self.include_embedding else None
        return {
            "event_id": plan.decision_id,
            "trace_id": f"{span_ctx.trace_id:032x}" if span_ctx else "",
            "span_id": f"{span_ctx.span_id:016x}" if span_ctx else "",
            "timestamp": int(self._clock() * 1000),
            "input": {
                "query_length": plan.query_length,
                "requested_model": plan.requested_model,
                "user_id": plan.user_hash,
                "team_id": plan.team_id,
            },
            "strategy": {"name": d.strategy, "version": d.strategy_version},
            "candidate_deployments": [
                {
                    "model_name": c.name,
                    "provider": c.provider,
                    "score": d.scores.get(c.name),
                    "available": True,
                    "propensity": d.propensities.get(c.name),
                }
                for c in plan.candidates
            ],
            "selected_deployment": d.selected,
            "selection_reason": d.reason,
            "timings": {
                "total_ms": total_ms,
                "strategy_ms": d.strategy_ms,
                "embedding_ms": d.embedding_ms,
            },
            "outcome": {
                "status": o.status,
                "input_tokens": o.input_tokens,
                "output_tokens": o.output_tokens,
                "total_tokens": o.input_tokens + o.output_tokens,
                "error_type": o.error_type,
                "cost_usd": o.cost_usd,
                "upstream_latency_ms": o.upstream_ms,
            },
            "fallback": {
                "used": o.fallback_used,
                "attempted_deployments": o.attempted,
                "reason": f"served by {o.served_group}" if o.fallback_used else None,
            },
            "router_version": d.router_version,
            "exploration": d.exploration,
            "ab_arm": d.arm,
            # A numpy array: the serde packs it without a Python float per element.
            "query_embedding": (
                np.asarray(embedding, dtype=np.float32) if embedding is not None else None
            ),
            "embedding_model": d.embedding_model if embedding is not None else None,
            "domain": plan.domain,
        }

    def record(self, plan: Plan) -> None:
        """Span attributes, metrics and the decision event (enqueued; never blocks)."""
        o = plan.outcome
        assert o is not None
        d = plan.decision
        status = "200" if o.status == "SUCCESS" else o.status.lower()
        self.metrics.requests.labels(o.served_group, status).inc()
        self.metrics.upstream_latency.labels(o.served_group).observe(o.upstream_ms / 1000.0)
        if plan.span is not None:
            routing_ms = d.embedding_ms + d.strategy_ms
            plan.span.set_attributes(
                {
                    attrs.ATTR_DECISION_ID: plan.decision_id,
                    attrs.ATTR_STRATEGY: d.strategy,
                    attrs.ATTR_STRATEGY_VERSION: d.strategy_version,
                    attrs.ATTR_ROUTER_VERSION: plan.router_version,
                    attrs.ATTR_REQUESTED_MODEL: plan.requested_model,
                    attrs.ATTR_SELECTED_MODEL: d.selected,
                    attrs.ATTR_SELECTION_REASON: d.reason,
                    attrs.ATTR_CANDIDATES: [c.name for c in plan.candidates],
                    attrs.ATTR_PROPENSITIES: [
                        d.propensities.get(c.name, 0.0) for c in plan.candidates
                    ],
                    attrs.ATTR_EXPLORATION: d.exploration,
                    attrs.ATTR_AB_ARM: d.arm or "",
                    attrs.ATTR_DOMAIN: plan.domain or "",
                    attrs.ATTR_USER_HASH: plan.user_hash or "",
                    attrs.ATTR_TEAM_ID: plan.team_id or "",
                    attrs.ATTR_QUERY_LENGTH: plan.query_length,
                    attrs.ATTR_ROUTING_MS: routing_ms,
                    attrs.ATTR_EMBEDDING_MS: d.embedding_ms,
                    attrs.ATTR_STRATEGY_MS: d.strategy_ms,
                    attrs.ATTR_TOTAL_MS: (time.perf_counter() - plan.started) * 1000.0,
                    attrs.ATTR_UPSTREAM_MS: o.upstream_ms,
                    attrs.ATTR_STATUS: o.status,
                    attrs.ATTR_INPUT_TOKENS: o.input_tokens,
                    attrs.ATTR_OUTPUT_TOKENS: o.output_tokens,
                    attrs.ATTR_COST_USD: o.cost_usd or 0.0,
                    attrs.ATTR_FALLBACK_USED: o.fallback_used,
                    attrs.ATTR_ATTEMPTED: o.attempted,
                }
            )
            if o.status != "SUCCESS":
                plan.span.set_status(trace.StatusCode.ERROR, o.error_type or o.status)
        if self.publisher is None or self._decision_serde is None:
            return
        value = self._decision_serde.encode(self.decision_event(plan))
        self.publisher.publish(self.decisions_topic, plan.decision_id.encode(), value)

    # ------------------------------------------------------------ feedback

    def feedback(self, body: Mapping[str, Any]) -> str:
        """Validate and publish a ``Feedback`` record; returns its id."""
        decision_id = body.get("decision_id")
        if not isinstance(decision_id, str) or not decision_id:
            raise BadRequest("'decision_id' (string) is required", param="decision_id")
        why = self.ids.check(decision_id)
        if why is not None:
            raise NotFound(
                f"{why}: {decision_id!r}", param="decision_id", code="decision_not_found"
            )
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise BadRequest("'score' must be a number in [0, 1]", param="score")
        if not 0.0 <= float(score) <= 1.0:
            raise BadRequest(f"'score' must be in [0, 1], got {score}", param="score")
        source = body.get("source", "user")
        if (
            not isinstance(source, str)
            or not 0 < len(source) <= 64
            or not set(source.lower()) <= _SOURCE_OK
        ):
            raise BadRequest("'source' must be 1-64 characters of a-z 0-9 - _ . :", param="source")
        candidate = body.get("candidate")
        if candidate is not None and candidate not in self.options:
            raise BadRequest(
                f"'candidate' {candidate!r} is not a model group here ({self.groups})",
                param="candidate",
            )
        for name in ("cost_usd", "latency_ms"):
            v = body.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
                raise BadRequest(f"'{name}' must be a number >= 0", param=name)
        judge = body.get("judge_model")
        if judge is not None and not isinstance(judge, str):
            raise BadRequest("'judge_model' must be a string", param="judge_model")
        unknown = set(body) - {
            "decision_id",
            "score",
            "source",
            "candidate",
            "cost_usd",
            "latency_ms",
            "judge_model",
        }
        if unknown:
            raise BadRequest(f"unknown field(s) {sorted(unknown)}", param=sorted(unknown)[0])
        feedback_id = str(uuid.uuid4())
        record = {
            "feedback_id": feedback_id,
            "decision_id": decision_id,
            "score": float(score),
            "source": source,
            "created_at": int(self._clock() * 1000),
            "candidate": candidate,
            "judge_model": judge,
            "cost_usd": None if body.get("cost_usd") is None else float(body["cost_usd"]),
            "latency_ms": None if body.get("latency_ms") is None else float(body["latency_ms"]),
            "trace_id": None,
        }
        self.metrics.feedback.labels(source).inc()
        if self.publisher is not None and self._feedback_serde is not None:
            self.publisher.publish(
                self.feedback_topic, decision_id.encode(), self._feedback_serde.encode(record)
            )
        return feedback_id


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":")).encode()


def _as_gateway_error(exc: BaseException) -> UpstreamFailed:
    status = int(getattr(exc, "status_code", 0) or 0)
    message = f"upstream failed after retries and fallbacks: {type(exc).__name__}: {exc}"
    if isinstance(exc, LiteLLMTimeout | TimeoutError):
        return UpstreamFailed(message, status=504, code="upstream_timeout")
    if status == 429:
        return UpstreamFailed(message, status=429, code="upstream_rate_limited")
    if 400 <= status < 500:
        # The provider refused the request itself (bad parameters): the client's to fix.
        return UpstreamFailed(message, status=400, code="upstream_bad_request")
    return UpstreamFailed(message, status=502)


def _last_error(plan: Plan) -> UpstreamFailed:
    exc = plan.extra.get("error")
    return (
        _as_gateway_error(exc)
        if isinstance(exc, BaseException)
        else UpstreamFailed("upstream failed")
    )
