"""The routing decision for one request: which model group serves it, and why.

``RoutePlanner.plan`` turns a validated ``ChatRequest`` into a ``Plan``: an alias (``auto``)
goes through the routing engine (strategy, ε-exploration, propensities, embedding); a model
group named directly is served as asked and logged as the ``direct`` strategy; a RouteLLM
model name, ``router-<router type>-<threshold>`` (``router-mf-0.11593``), routes between the
strong and the weak model with the active learned router at the client's threshold.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from routeiq.routing.bundle import LoadedBundle
from routeiq.routing.engine import Decision, RoutingEngine
from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput, RouteLLMThreshold

from routeiq_gateway.config import ModelFile
from routeiq_gateway.errors import BadRequest, NotFound
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


def client_decision(
    selected: str,
    *,
    reason: str,
    strategy: str,
    strategy_version: str,
    candidates: list[ModelOption] | None = None,
    scores: dict[str, float | None] | None = None,
    router_version: str | None = None,
    logged: tuple[str, Any] | None = None,
    timings_ms: tuple[float, float] = (0.0, 0.0),
) -> Decision:
    """A decision the client made with its model name (a model group, or a RouteLLM router
    and threshold): no A/B arm and no exploration, so the pick has propensity 1 and the other
    ``candidates`` (default: none) 0. ``logged`` is (pipeline id, vector) when the request's
    features are logged; ``timings_ms`` is (embedding, strategy)."""
    return Decision(
        selected=selected,
        reason=reason,
        strategy=strategy,
        strategy_version=strategy_version,
        arm=None,
        exploration=False,
        propensities={c.name: 0.0 for c in candidates or []} | {selected: 1.0},
        scores=scores or {},
        router_version=router_version,
        embedding=logged[1] if logged is not None else None,
        embedding_ms=timings_ms[0],
        strategy_ms=timings_ms[1],
        embedding_model=logged[0] if logged is not None else None,
    )


ROUTELLM_PREFIX = "router-"
ROUTELLM_FORM = "router-<router type>-<threshold>, e.g. router-mf-0.11593"


def parse_routellm_model(model: str) -> tuple[str, float] | None:
    """(router type, threshold) of a RouteLLM model name, None for any other name.

    Split as RouteLLM's controller splits it (``model.split("-", 2)``), so a name its clients
    send means the same here; the threshold is a number in [0, 1] (``BadRequest`` otherwise).
    """
    if not model.startswith(ROUTELLM_PREFIX):
        return None
    parts = model.split("-", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise BadRequest(
            f"model {model!r}: a RouteLLM model name is {ROUTELLM_FORM}",
            param="model",
            code="invalid_model",
        )
    try:
        threshold = float(parts[2])
    except ValueError:
        threshold = math.nan
    if not 0.0 <= threshold <= 1.0:  # NaN fails too
        raise BadRequest(
            f"model {model!r}: the threshold {parts[2]!r} must be a number in [0, 1] (the "
            f"strong model's win rate at or above which it serves); the form is {ROUTELLM_FORM}",
            param="model",
            code="invalid_model",
        )
    return parts[1], threshold


def routellm_pair(model_file: ModelFile) -> tuple[str, str] | None:
    """The (strong, weak) pair a RouteLLM model name routes between: the first ``threshold``
    or ``routellm`` strategy's in the model file, else the candidate with the highest
    ``quality_rank`` and the cheapest one (None with fewer than two candidates)."""
    groups = set(model_file.model_groups)
    for spec in model_file.routeiq.strategies:
        strong, weak = spec.params.get("strong"), spec.params.get("weak")
        if spec.kind in {"threshold", "routellm"} and {strong, weak} <= groups:
            return str(strong), str(weak)
    options = model_options(model_file)
    names = model_file.candidate_groups
    strong = max(names, key=lambda n: (options[n].quality_rank, n))
    weak = min(
        names,
        key=lambda n: (options[n].input_price + options[n].output_price, options[n].quality_rank),
    )
    return (strong, weak) if strong != weak else None


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
        self.routellm_pair = routellm_pair(self.model_file)

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
        # A router scored in another process (causallm) waits on it: never on the event loop.
        slow = slow or (bundle is not None and bundle.router.out_of_process)
        if slow:
            return await anyio.to_thread.run_sync(work)
        return work()

    def route_input(
        self, text: str, *, model: str, unit_key: str, domain: str | None, team: str | None = None
    ) -> RouteInput:
        """The strategies' view of one request (features computed on demand)."""
        features = self.embeddings
        return RouteInput(
            text,
            requested_model=model,
            unit_key=unit_key,
            team=team,
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
            routed = self.route_input(
                text, model=model, unit_key=unit_key, domain=request.domain, team=request.team
            )
            decision = await self._off_loop_if_slow(
                lambda: self.engine.route(routed, candidates, want_embedding=self.include_embedding)
            )
        elif model in self.options:
            candidates = [self.options[model]]
            logged = None
            if self.include_embedding:
                # Logged with the active router's features, as routed requests are.
                direct = self.route_input(
                    text, model=model, unit_key=unit_key, domain=request.domain
                )
                bundle = self.holder.get()
                active = bundle.featurizer if bundle is not None else None
                vector = await self._off_loop_if_slow(lambda: direct.embedding(active))
                found = direct.peek_embedding(active)
                logged = (found[0], vector) if found is not None else None
            decision = client_decision(
                model,
                reason="model requested by name",
                strategy="direct",
                strategy_version="direct/1",
                logged=logged,
            )
        elif (named := parse_routellm_model(model)) is not None:
            routed = self.route_input(text, model=model, unit_key=unit_key, domain=request.domain)
            strategy, bundle = self.routellm_strategy(model, *named)
            candidates = [self.options[strategy.strong], self.options[strategy.weak]]
            decision = await self._off_loop_if_slow(
                lambda: self.routellm_decision(strategy, bundle, routed, candidates)
            )
        else:
            raise NotFound(
                f"model {model!r} is not served here; use one of {sorted(self.aliases)} to let "
                f"RouteIQ choose, {self._routellm_hint()}, or one of {self.groups}",
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

    def _routellm_hint(self) -> str:
        """How to ask for the active router by RouteLLM's convention, for error messages."""
        bundle = self.holder.get()
        if bundle is None or self.routellm_pair is None:
            return "router-<type>-<threshold> once a learned router is loaded"
        return f"router-{bundle.manifest.router_type}-<threshold in [0, 1]>"

    def routellm_strategy(
        self, model: str, kind: str, threshold: float
    ) -> tuple[RouteLLMThreshold, LoadedBundle]:
        """RouteLLM's rule for one request on the bundle active now (kept for the whole
        request, as an engine decision keeps its configuration); ``NotFound`` names what
        is served when the router type is not the active one."""
        bundle = self.holder.get()
        if bundle is None:
            raise NotFound(
                f"model {model!r}: no learned router is loaded yet, so no {ROUTELLM_FORM} is "
                f"served; use one of {sorted(self.aliases)} or one of {self.groups}",
                param="model",
                code="model_not_found",
            )
        active = bundle.manifest.router_type
        if kind != active:
            raise NotFound(
                f"model {model!r}: router type {kind!r} is not loaded here; the active router "
                f"is {active!r}: use router-{active}-<threshold in [0, 1]>",
                param="model",
                code="model_not_found",
            )
        pair = self.routellm_pair
        if pair is None or not set(pair) <= set(bundle.manifest.models):
            raise NotFound(
                f"model {model!r}: the active {active} router scores {list(bundle.manifest.models)}"
                f", not the strong/weak pair {list(pair or ())} this gateway routes between",
                param="model",
                code="model_not_found",
            )
        snapshot = BundleHolder()
        snapshot.swap(bundle, at=0.0)
        strong, weak = pair
        params = {"strong": strong, "weak": weak, "threshold": threshold}
        return RouteLLMThreshold(f"router-{kind}", params, holder=snapshot), bundle

    def routellm_decision(
        self,
        strategy: RouteLLMThreshold,
        bundle: LoadedBundle,
        routed: RouteInput,
        candidates: list[ModelOption],
    ) -> Decision:
        """The decision for a RouteLLM model name: like a model named directly, the client's
        own choice of policy (``client_decision``). The strategy is named ``router-<type>``,
        the threshold is in the reason, and the name the client sent is the event's
        ``requested_model``."""
        started = time.perf_counter()
        choice = strategy.choose(routed, candidates)
        strategy_ms = (time.perf_counter() - started) * 1000.0 - routed.embedding_ms
        # The vector the router scored is the active router's features: log it like a routed
        # request's when embeddings are logged.
        found = routed.peek_embedding(bundle.featurizer) if self.include_embedding else None
        return client_decision(
            choice.model,
            reason=f"RouteLLM {routed.requested_model}: {choice.reason}",
            strategy=strategy.name,
            strategy_version=f"{strategy.kind}/{strategy.version}",
            candidates=candidates,
            scores=choice.scores,
            router_version=choice.router_version,
            logged=found,
            timings_ms=(routed.embedding_ms, strategy_ms),
        )
