"""Strategy instances by name: built from a kind and parameters, registered, looked up.

The registry hands out its mapping copy-on-write (``strategies``): a view a request holds never
changes under it, which is what lets the engine swap a whole configuration in one step.
"""

from __future__ import annotations

import random as _random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from routeiq.errors import ConfigError
from routeiq.routing.strategies import (
    BundleHolder,
    CheapestStrategy,
    LearnedStrategy,
    PolicyStrategy,
    RandomStrategy,
    Strategy,
    StrongestStrategy,
    ThresholdStrategy,
    strategy_class,
)


class StrategyRegistry:
    """Strategy instances by name; built-ins are registered by the gateway at start."""

    def __init__(self, *, holder: BundleHolder, rng: _random.Random | None = None) -> None:
        self.holder = holder
        self._rng = rng
        self._strategies: dict[str, Strategy] = {}
        self._listeners: list[Callable[[Mapping[str, Strategy]], None]] = []
        self._lock = threading.Lock()

    def build(self, name: str, kind: str, params: Mapping[str, Any] | None = None) -> Strategy:
        """Instantiate a strategy of ``kind`` (validating its parameters) without registering."""
        p = dict(params or {})
        # ConfigError for an unknown kind, or a plugin that clashes with a built-in or is broken.
        cls = strategy_class(kind)
        if kind == "random":
            return RandomStrategy(name, p, rng=self._rng)
        if kind == "cheapest":
            return CheapestStrategy(name, p)
        if kind == "strongest":
            return StrongestStrategy(name, p)
        if kind == "policy":
            return PolicyStrategy(name, p)
        if kind == "threshold":
            return ThresholdStrategy(name, p, holder=self.holder)
        if kind == "learned":
            fallback_name = str(p.pop("fallback", "cheapest"))
            fallback = self.get(fallback_name)
            if fallback.kind == "learned":
                raise ConfigError("a learned strategy cannot fall back to another learned one")
            strategy = LearnedStrategy(name, p, holder=self.holder, fallback=fallback)
            strategy.params["fallback"] = fallback_name
            return strategy
        # Every other kind (``routellm``, plugins) builds itself from its parameters.
        return cls.from_config(name, p, holder=self.holder)

    def register(self, name: str, kind: str, params: Mapping[str, Any] | None = None) -> Strategy:
        if not name or len(name) > 64:
            raise ConfigError("a strategy name is 1-64 characters")
        strategy = self.build(name, kind, params)
        with self._lock:
            # Copy on write: a view handed out (``strategies``) never changes under its reader.
            self._strategies = {**self._strategies, name: strategy}
            for listener in self._listeners:
                listener(self._strategies)
        return strategy

    def listen(self, listener: Callable[[Mapping[str, Strategy]], None]) -> None:
        """Call ``listener`` with the new view after each ``register`` (the engine serving
        this registry takes it; a registration only adds or replaces names, so the
        configuration in use stays valid)."""
        self._listeners.append(listener)

    @property
    def strategies(self) -> Mapping[str, Strategy]:
        """Every strategy by name, as of now (never changed afterwards)."""
        return self._strategies

    def adopt(self, strategies: Mapping[str, Strategy]) -> None:
        """Hold exactly ``strategies`` from now on (a configuration rebuilt whole)."""
        with self._lock:
            self._strategies = dict(strategies)

    def get(self, name: str) -> Strategy:
        return lookup(self._strategies, name)

    def names(self) -> list[str]:
        return sorted(self._strategies)

    def describe(self) -> list[dict[str, Any]]:
        return [self._strategies[n].describe() for n in self.names()]


def lookup(strategies: Mapping[str, Strategy], name: str) -> Strategy:
    """``strategies[name]``, or ``ConfigError`` naming the registered ones."""
    try:
        return strategies[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}; registered: {', '.join(sorted(strategies))}"
        ) from None
