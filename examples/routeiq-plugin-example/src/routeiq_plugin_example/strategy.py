"""``example_length``: short prompts to the cheapest candidate, long ones to the strongest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from routeiq.errors import ConfigError
from routeiq.routing.strategies import Choice, ModelOption, RouteInput, Strategy


class LengthTierStrategy(Strategy):
    """Prompts of at most ``max_chars`` characters go to the candidate with the lowest
    estimated cost, longer ones to the one with the highest ``quality_rank``.

    Parameters are checked in the constructor, so a bad model file or admin change is refused
    before it serves; ``choose`` runs on every request and must stay cheap.
    """

    kind = "example_length"
    version = "1"
    capabilities = frozenset({"cost_aware"})

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, params)
        self.check_params({"max_chars"})
        limit = self.params.get("max_chars", 400)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"strategy {self.kind}: max_chars must be a positive integer")
        self.max_chars = limit

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        chars = len(request.text)
        if chars <= self.max_chars:
            tokens = request.est_tokens
            pick = min(candidates, key=lambda c: (c.est_cost(tokens), -c.quality_rank, c.name))
            why = f"{chars} chars <= {self.max_chars}: cheapest candidate"
        else:
            pick = max(candidates, key=lambda c: (c.quality_rank, -c.input_price, c.name))
            why = f"{chars} chars > {self.max_chars}: strongest candidate"
        return Choice(pick.name, why, scores={c.name: c.quality_rank for c in candidates})
