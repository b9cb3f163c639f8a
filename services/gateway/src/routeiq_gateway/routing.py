"""The routing decision for one request: which model group serves it, and why.

``RoutePlanner.plan`` turns a validated ``ChatRequest`` into a ``Plan``: an alias (``auto``)
goes through the routing engine (strategy, ε-exploration, propensities, embedding); a model
group named directly is served as asked and logged as the ``direct`` strategy.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from routeiq.routing.engine import Decision, RoutingEngine
from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput

from routeiq_gateway.config import ModelFile
from routeiq_gateway.errors import NotFound
from routeiq_gateway.features import FeatureService
from routeiq_gateway.ids import DecisionIds
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.request_models import ChatRequest

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Plan:
    """One request's routing decision and what is needed to serve and log it."""

    decision_id: str
    request: ChatRequest
    decision: Decision
    candidates: list[ModelOption]
    user_hash: str | None
    started: float  # time.perf_counter() when the request was read

    @property
    def group(self) -> str:
        """The model group chosen to serve the request (before any upstream fallback)."""
        return self.decision.selected

    @property
    def router_version(self) -> str:
        return self.decision.router_version or "none"


def model_options(model_file: ModelFile) -> dict[str, ModelOption]:
    """Every model group of the file as the strategies see it (prices, quality rank)."""
    rq = model_file.routeiq
    options = {}
    for g in model_file.model_groups:
        input_price, output_price = model_file.prices(g)
        candidate = rq.candidates.get(g)
        options[g] = ModelOption(
            name=g,
            provider=model_file.provider(g),
            input_price=input_price,
            output_price=output_price,
            quality_rank=candidate.quality_rank if candidate is not None else 0.0,
            expected_output_tokens=(
                candidate.expected_output_tokens if candidate is not None else 256
            ),
        )
    return options


def direct_decision(model: str, embedding: Any, embedding_model: str | None) -> Decision:
    """The decision logged for a model group named directly (propensity 1, no strategy)."""
    return Decision(
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


# eq=False: compared by identity, like the engine it holds.
@dataclass(kw_only=True, eq=False)
class RoutePlanner:
    """Decides which model group serves a request, with the features the strategies need."""

    model_file: ModelFile
    engine: RoutingEngine
    holder: BundleHolder
    embeddings: FeatureService | None
    ids: DecisionIds
    metrics: GatewayMetrics
    user_salt: bytes
    include_embedding: bool

    def __post_init__(self) -> None:
        # Without a feature service there is no vector to log, whatever the setting says.
        self.include_embedding = self.include_embedding and self.embeddings is not None
        self.aliases = set(self.model_file.routeiq.route_aliases)
        self.groups = self.model_file.model_groups
        self.options = model_options(self.model_file)
        self.candidate_names = self.model_file.candidate_groups

    # Two methods, not one helper taking a lambda: they run on every routed request.
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
        return hmac.new(self.user_salt, user.encode(), hashlib.sha256).hexdigest()[:32]

    async def plan(self, request: ChatRequest, *, started: float) -> Plan:
        """Decide which model group serves ``request`` (``NotFound`` for an unknown model)."""
        model, text = request.model, request.text
        decision_id = self.ids.new()
        unit_key = request.user or request.team or decision_id
        if model in self.aliases:
            candidates = [self.options[g] for g in self.candidate_names]
            routed = self.route_input(text, model=model, unit_key=unit_key, domain=request.domain)
            decision = await self._off_loop_if_slow(
                lambda: self.engine.route(routed, candidates, want_embedding=self.include_embedding)
            )
        elif model in self.options:
            candidates = [self.options[model]]
            embedding, embedding_model = None, None
            if self.include_embedding:
                # Logged with the active router's features, as routed requests are.
                direct = self.route_input(
                    text, model=model, unit_key=unit_key, domain=request.domain
                )
                bundle = self.holder.get()
                active = bundle.featurizer if bundle is not None else None
                embedding = await self._off_loop_if_slow(lambda: direct.embedding(active))
                found = direct.peek_embedding(active)
                embedding_model = found[0] if found is not None else None
            decision = direct_decision(model, embedding, embedding_model)
        else:
            raise NotFound(
                f"model {model!r} is not served here; use one of {sorted(self.aliases)} to let "
                f"RouteIQ choose, or one of {self.groups}",
                param="model",
                code="model_not_found",
            )
        return Plan(
            decision_id,
            request,
            decision,
            candidates,
            user_hash=self.hash_user(request.user),
            started=started,
        )
