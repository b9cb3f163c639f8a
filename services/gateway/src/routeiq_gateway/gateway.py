"""The gateway apart from HTTP: validate → route → serve → record, and feedback.

``Gateway`` composes the parts (``RoutePlanner``, ``Serving``, ``DecisionTelemetry``) from the
collaborators the composition root builds, and is what the HTTP layer calls.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from routeiq.contracts.serde import AvroSerde
from routeiq.routing.engine import RoutingEngine, StrategyRegistry
from routeiq.routing.strategies import BundleHolder

from routeiq_gateway.config import ModelFile
from routeiq_gateway.features import FeatureService
from routeiq_gateway.ids import DecisionIds
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.publisher import Publisher
from routeiq_gateway.request_models import FeedbackRequest, parse_chat_request, parse_feedback
from routeiq_gateway.routing import Plan, RoutePlanner
from routeiq_gateway.serving import Served, Serving
from routeiq_gateway.shadow import ShadowSampler
from routeiq_gateway.shadow_jobs import ShadowConfig
from routeiq_gateway.shadow_worker import ShadowProcess
from routeiq_gateway.telemetry import DecisionTelemetry
from routeiq_gateway.upstream import Upstream


def feedback_record(
    request: FeedbackRequest, *, feedback_id: str, created_at_ms: int
) -> dict[str, Any]:
    """The ``Feedback`` record (``routeiq.feedback.v1``) for a validated request."""
    return {
        "feedback_id": feedback_id,
        "decision_id": request.decision_id,
        "score": request.score,
        "source": request.source,
        "created_at": created_at_ms,
        "candidate": request.candidate,
        "judge_model": request.judge_model,
        "cost_usd": request.cost_usd,
        "latency_ms": request.latency_ms,
        "trace_id": None,
    }


# eq=False: the app holds one, compared by identity.
@dataclass(kw_only=True, eq=False)
class Gateway:
    model_file: ModelFile
    engine: RoutingEngine
    holder: BundleHolder
    upstream: Upstream
    embeddings: FeatureService | None
    publisher: Publisher | None
    decision_serde: AvroSerde | None
    feedback_serde: AvroSerde | None
    decisions_topic: str
    feedback_topic: str
    ids: DecisionIds
    metrics: GatewayMetrics
    user_salt: bytes
    # The setting; whether vectors are logged is ``planner.include_embedding`` (needs features).
    include_embedding: bool = True
    query_key: bytes | None = None  # the HMAC key of decisions' query_key; none: no key
    clock: Callable[[], float] = time.time
    # Shadow sampling (``routeiq_gateway.shadow``): off unless a config with a share is given;
    # jobs run on this loop unless the config names a worker process. Inline, its daily
    # budgets live in ``shadow_redis`` (None: nothing is shadowed, fail closed).
    shadow_config: ShadowConfig | None = None
    shadow_redis: Redis | None = None

    def __post_init__(self) -> None:
        self.planner = RoutePlanner(
            model_file=self.model_file,
            engine=self.engine,
            holder=self.holder,
            embeddings=self.embeddings,
            ids=self.ids,
            metrics=self.metrics,
            user_salt=self.user_salt,
            include_embedding=self.include_embedding,
        )
        self.telemetry = DecisionTelemetry(
            metrics=self.metrics,
            publisher=self.publisher,
            serde=self.decision_serde,
            topic=self.decisions_topic,
            include_embedding=self.planner.include_embedding,
            query_key=self.query_key,
            clock=self.clock,
        )
        self.shadow = None
        if self.shadow_config is not None and self.shadow_config.enabled:
            config = self.shadow_config
            runner = ShadowProcess(config) if config.worker is not None else None
            self.shadow = ShadowSampler(config, self, runner=runner)
        self.serving = Serving(
            upstream=self.upstream,
            telemetry=self.telemetry,
            on_served=self.shadow.offer if self.shadow is not None else None,
        )
        self.registry: StrategyRegistry = self.engine.registry
        self.aliases = self.planner.aliases
        self.groups = self.planner.groups
        self.options = self.planner.options

    @property
    def telemetry_enabled(self) -> bool:
        return self.telemetry.enabled

    async def plan(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Plan:
        """Validate a chat-completion body and decide which model group serves it."""
        started = time.perf_counter()
        plan = await self.planner.plan(parse_chat_request(body, headers), started=started)
        self.telemetry.routed(plan)
        return plan

    async def complete(self, plan: Plan) -> Served:
        """Serve a non-streaming request (``UpstreamFailed`` if the upstream gave up)."""
        return await self.serving.complete(plan)

    async def open_stream(self, plan: Plan) -> AsyncIterator[bytes]:
        """Serve a streaming request as SSE bytes, failing fast if the upstream refuses."""
        return await self.serving.open_stream(plan)

    def feedback(self, body: Mapping[str, Any]) -> str:
        """Validate and publish a ``Feedback`` record; returns its id."""
        request = parse_feedback(body, check_decision_id=self.ids.check, groups=self.groups)
        feedback_id = str(uuid.uuid4())
        self.publish_feedback(
            feedback_record(
                request, feedback_id=feedback_id, created_at_ms=int(self.clock() * 1000)
            )
        )
        return feedback_id

    def publish_feedback(self, record: Mapping[str, Any]) -> None:
        """Count a ``Feedback`` record and publish it (keyed by its decision) when telemetry
        is on."""
        self.metrics.feedback.labels(record["source"]).inc()
        if self.publisher is not None and self.feedback_serde is not None:
            self.publisher.publish(
                self.feedback_topic,
                str(record["decision_id"]).encode(),
                self.feedback_serde.encode(record),
            )
