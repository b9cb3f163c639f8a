"""The routing engine: strategy registry, deterministic A/B split, ε-exploration, propensities.

Every decision records the probability with which each candidate would have been chosen
(its propensity) under the policy actually in force, which is what makes logged traffic
usable for off-policy training and evaluation:

    p(a) = (1 − ε)·[a = greedy] + ε / K     (ε-greedy over K available candidates)
    p(a) = (1 − ε)·π(a) + ε / K              (a strategy that randomised with probabilities π)
    p(a) = 1 / K                             (a strategy that itself randomises uniformly)

The configuration (default strategy, A/B weights, per-domain overrides, ε) is an immutable
snapshot swapped atomically by the admin API; requests in flight keep the one they started
with.
"""

from __future__ import annotations

import hashlib
import random as _random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError
from routeiq.routing.registry import StrategyRegistry, lookup
from routeiq.routing.strategies import Choice, ModelOption, RouteInput, Strategy

__all__ = [
    "Decision",
    "Rollout",
    "RoutingConfig",
    "RoutingEngine",
    "StrategyRegistry",
    "assign_arm",
    "lookup",
]


@dataclass(frozen=True)
class Rollout:
    """A strategy rolled out in phases (monitoring only → some teams or domains → a share of
    everyone). A request is in when its team or domain is enabled, or its unit key (user,
    else team) hashes below ``percent``: sticky, and raising the share only adds units. Those
    in are served by ``strategy``; everyone else takes the configuration's usual path. With
    ``monitoring_only`` nobody is served by it: it decides for those in, and the decision
    logs what it would have chosen while the usual path serves."""

    strategy: str
    percent: float = 0.0
    teams: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    monitoring_only: bool = False

    def validate(self, names: set[str]) -> None:
        if self.strategy not in names:
            raise ConfigError(
                f"rollout strategy {self.strategy!r} is not registered; registered: {sorted(names)}"
            )
        if not 0.0 <= self.percent <= 100.0:
            raise ConfigError(f"rollout percent must be in [0, 100], got {self.percent}")

    def includes(self, request: RouteInput, salt: str) -> bool:
        if request.team is not None and request.team in self.teams:
            return True
        if request.domain is not None and request.domain in self.domains:
            return True
        return _unit_position(request.unit_key, f"{salt}:rollout") < self.percent / 100.0

    def describe(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "percent": self.percent,
            "teams": sorted(self.teams),
            "domains": sorted(self.domains),
            "monitoring_only": self.monitoring_only,
        }


@dataclass(frozen=True)
class RoutingConfig:
    """Which strategy serves whom. ``ab`` maps strategy names to weights (empty: default);
    ``rollout`` serves a strategy to part of the traffic before that; ``kill_switch`` sends
    everything to ``default``, without exploration, whatever else is configured."""

    default: str
    ab: Mapping[str, float] = field(default_factory=dict)
    domain_overrides: Mapping[str, str] = field(default_factory=dict)
    epsilon: float = 0.05
    salt: str = "routeiq"
    rollout: Rollout | None = None
    kill_switch: bool = False

    def validate(self, known: Sequence[str]) -> None:
        names = set(known)
        missing = ({self.default} | set(self.ab) | set(self.domain_overrides.values())) - names
        if missing:
            raise ConfigError(
                f"unknown strategy name(s) {sorted(missing)}; registered: {sorted(names)}"
            )
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if any(w < 0 for w in self.ab.values()):
            raise ConfigError("A/B weights must be >= 0")
        if self.ab and sum(self.ab.values()) <= 0:
            raise ConfigError("A/B weights must not all be zero")
        if self.rollout is not None:
            self.rollout.validate(names)

    def describe(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "ab": dict(self.ab),
            "domain_overrides": dict(self.domain_overrides),
            "epsilon": self.epsilon,
            "rollout": self.rollout.describe() if self.rollout is not None else None,
            "kill_switch": self.kill_switch,
        }


@dataclass
class Decision:
    """Everything the gateway serves and logs about one routing decision."""

    selected: str
    reason: str
    strategy: str
    strategy_version: str
    arm: str | None
    exploration: bool
    propensities: dict[str, float]
    scores: dict[str, float | None]
    router_version: str | None
    embedding: NDArray[np.float32] | None
    embedding_ms: float
    strategy_ms: float
    embedding_model: str | None = None  # the feature pipeline of ``embedding``


def _unit_position(unit_key: str, salt: str) -> float:
    """Where a unit key falls in [0, 1): the same key always falls in the same place."""
    digest = hashlib.blake2b(f"{salt}:{unit_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_arm(unit_key: str, weights: Mapping[str, float], salt: str) -> str:
    """Deterministic weighted split: the same unit key always lands in the same arm."""
    u = _unit_position(unit_key, salt)
    total = sum(weights.values())
    acc = 0.0
    for name in sorted(weights):  # sorted: the split does not depend on dict order
        acc += weights[name] / total
        if u < acc:
            return name
    return sorted(weights)[-1]


# The arm a decision logs when the kill switch or a rollout picked its strategy.
KILL_SWITCH_ARM = "kill-switch"
ROLLOUT_ARM = "rollout"


class RoutingEngine:
    """Routes one request: A/B arm → strategy → ε-exploration → decision with propensities."""

    def __init__(
        self,
        registry: StrategyRegistry,
        config: RoutingConfig,
        *,
        rng: _random.Random | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        config.validate(registry.names())
        self.registry = registry
        # The configuration and the strategies it names, swapped as one reference: a request
        # reads both at once and never sees a configuration naming a strategy it lacks.
        self._active: tuple[RoutingConfig, Mapping[str, Strategy]] = (config, registry.strategies)
        registry.listen(self._registered)
        self._rng = rng or _random.Random()  # noqa: S311 - exploration, not cryptography
        self._rng_lock = threading.Lock()
        self._clock = clock

    @property
    def config(self) -> RoutingConfig:
        return self._active[0]

    def configure(self, **changes: Any) -> RoutingConfig:
        """Validate and atomically install a new configuration (admin API)."""
        new = replace(self.config, **changes)
        new.validate(self.registry.names())
        self._active = (new, self.registry.strategies)
        return new

    def adopt(self, other: RoutingEngine) -> RoutingConfig:
        """Serve ``other``'s strategies and configuration from now on, in one step (the
        control topic's versions are built whole on a scratch engine, then adopted).

        A strategy whose kind and parameters did not change stays the instance that served
        so far, with what it learned live (the threshold's score window, the learned
        policy's λ): switching the kill switch on and off must not reset calibrations."""
        config, built = other._active
        config.validate(list(built))
        current = self.registry.strategies
        kept: dict[str, Strategy] = {}
        # Learned strategies hold their fallback: keep one only if its fallback was kept.
        for name, new in sorted(built.items(), key=lambda item: item[1].kind == "learned"):
            old = current.get(name)
            same = old is not None and type(old) is type(new) and old.params == new.params
            if same and new.kind == "learned":
                fallback = str(new.params.get("fallback"))
                same = kept.get(fallback) is current.get(fallback)
            kept[name] = old if same and old is not None else new
        self._active = (config, kept)
        self.registry.adopt(kept)
        return config

    def _registered(self, strategies: Mapping[str, Strategy]) -> None:
        self._active = (self._active[0], strategies)

    def strategy_for(
        self,
        request: RouteInput,
        config: RoutingConfig,
        strategies: Mapping[str, Strategy] | None = None,
    ) -> tuple[Strategy, str | None]:
        """The strategy that serves ``request``, and its arm (None: the default)."""
        named = strategies if strategies is not None else self.registry.strategies
        if config.kill_switch:
            return lookup(named, config.default), KILL_SWITCH_ARM
        rollout = config.rollout
        if (
            rollout is not None
            and not rollout.monitoring_only
            and rollout.includes(request, config.salt)
        ):
            return lookup(named, rollout.strategy), ROLLOUT_ARM
        if request.domain and request.domain in config.domain_overrides:
            override = config.domain_overrides[request.domain]
            return lookup(named, override), f"domain:{request.domain}"
        if config.ab:
            arm = assign_arm(request.unit_key, config.ab, config.salt)
            return lookup(named, arm), arm
        return lookup(named, config.default), None

    def _monitor(
        self,
        request: RouteInput,
        candidates: Sequence[ModelOption],
        config: RoutingConfig,
        strategies: Mapping[str, Strategy],
    ) -> str | None:
        """In monitoring-only mode, what the rollout strategy would choose for a request it
        includes (None otherwise). It decides and is logged; it never serves."""
        rollout = config.rollout
        if config.kill_switch or rollout is None or not rollout.monitoring_only:
            return None
        if not rollout.includes(request, config.salt):
            return None
        shadow = lookup(strategies, rollout.strategy)
        choice = shadow.choose(request, candidates)
        return f"{shadow.name} would choose {choice.model} ({choice.reason})"

    def route(
        self,
        request: RouteInput,
        candidates: Sequence[ModelOption],
        *,
        want_embedding: bool = False,
    ) -> Decision:
        """Choose a candidate for ``request``. ``candidates`` must be non-empty."""
        if not candidates:
            raise ConfigError("no candidate models to route between")
        config, strategies = self._active
        strategy, arm = self.strategy_for(request, config, strategies)
        monitored = self._monitor(request, candidates, config, strategies)
        # Telemetry logs the active router's features (what the next router trains on), or
        # the default pipeline's before any router is active.
        bundle = self.registry.holder.get()
        logged = bundle.featurizer if bundle is not None else None
        if want_embedding:
            request.embedding(logged)
        t0 = self._clock()
        # Strategies embed lazily (only when they need it); that time is reported apart.
        embedded_before = request.embedding_ms
        choice: Choice = strategy.choose(request, candidates)
        lazy_embedding_ms = request.embedding_ms - embedded_before
        k = len(candidates)
        eps = config.epsilon if k > 1 and not config.kill_switch else 0.0
        with self._rng_lock:
            explore = self._rng.random() < eps
            explored_pick = self._rng.choice(list(candidates)).name if explore else None
        if choice.uniform:
            propensities = {c.name: 1.0 / k for c in candidates}
            selected, exploration = choice.model, False
        else:
            greedy = choice.probabilities or {choice.model: 1.0}
            propensities = {
                c.name: (1.0 - eps) * greedy.get(c.name, 0.0) + eps / k for c in candidates
            }
            selected = explored_pick if explored_pick is not None else choice.model
            exploration = explore
        strategy_ms = (self._clock() - t0) * 1000.0 - lazy_embedding_ms
        reason = choice.reason
        if exploration and selected != choice.model:
            reason = f"exploration (ε={eps:g}) instead of {choice.model}: {reason}"
        if config.kill_switch:
            reason = f"kill switch: {reason}"
        if monitored is not None:
            reason = f"{reason}; monitoring {monitored}"
        computed = request.peek_embedding(logged)
        return Decision(
            selected=selected,
            reason=reason,
            strategy=strategy.name,
            strategy_version=f"{strategy.kind}/{strategy.version}",
            arm=arm,
            exploration=exploration,
            propensities=propensities,
            scores=choice.scores,
            router_version=choice.router_version,
            embedding=computed[1] if computed is not None else None,
            embedding_ms=request.embedding_ms,
            strategy_ms=strategy_ms,
            embedding_model=computed[0] if computed is not None else None,
        )
