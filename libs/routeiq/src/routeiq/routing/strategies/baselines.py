"""Baseline strategies that need no learned router: uniform random, cheapest, strongest."""

from __future__ import annotations

import random as _random
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from routeiq.routing.strategies.base import Choice, ModelOption, RouteInput, Strategy

__all__ = ["CheapestStrategy", "RandomStrategy", "StrongestStrategy"]


class RandomStrategy(Strategy):
    kind = "random"
    capabilities = frozenset({"baseline"})

    def __init__(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        rng: _random.Random | None = None,
    ) -> None:
        super().__init__(name, params)
        self.check_params({"seed"})
        self._rng = rng or self.seeded_rng()
        self._lock = threading.Lock()

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        with self._lock:
            pick = self._rng.choice(list(candidates))
        return Choice(pick.name, "uniform random choice", uniform=True)


class CheapestStrategy(Strategy):
    kind = "cheapest"
    capabilities = frozenset({"cost_aware"})

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        tokens = request.features.est_tokens
        costs = {c.name: c.est_cost(tokens) for c in candidates}
        pick = min(candidates, key=lambda c: (costs[c.name], -c.quality_rank, c.name))
        return Choice(
            pick.name,
            f"lowest estimated cost ${costs[pick.name]:.6f}",
            scores={k: -v for k, v in costs.items()},
        )


class StrongestStrategy(Strategy):
    kind = "strongest"

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        pick = max(candidates, key=lambda c: (c.quality_rank, -c.input_price, c.name))
        return Choice(
            pick.name,
            f"highest quality rank {pick.quality_rank}",
            scores={c.name: c.quality_rank for c in candidates},
        )
