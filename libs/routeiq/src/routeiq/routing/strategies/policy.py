"""The static policy: domain overrides, ordered keyword and length rules, a cost budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routeiq.errors import ConfigError
from routeiq.routing.costpolicy import downgrade
from routeiq.routing.features import TextFeatures, matches_keywords
from routeiq.routing.strategies.base import Choice, ModelOption, RouteInput, Strategy

__all__ = ["PolicyRule", "PolicyStrategy"]


@dataclass(frozen=True)
class PolicyRule:
    name: str
    model: str
    keywords: tuple[str, ...] = ()
    min_chars: int | None = None
    max_chars: int | None = None
    code: bool | None = None
    math: bool | None = None

    def matches(self, text: str, features: TextFeatures) -> bool:
        if self.keywords and not matches_keywords(text, self.keywords):
            return False
        if self.min_chars is not None and features.chars < self.min_chars:
            return False
        if self.max_chars is not None and features.chars > self.max_chars:
            return False
        if self.code is not None and features.has_code != self.code:
            return False
        return not (self.math is not None and features.has_math != self.math)


class PolicyStrategy(Strategy):
    """Flexible policy mapping: domain overrides, ordered rules, a default, a cost budget.

    Params: ``default`` (model), ``rules`` (list of {name, model, keywords, min_chars,
    max_chars, code, math}; the first match wins), ``domains`` ({domain: model}),
    ``budget_usd`` (per request; a pick estimated above it is downgraded to the strongest
    model within budget, else the cheapest).
    """

    kind = "policy"
    capabilities = frozenset({"rules", "cost_aware"})

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, params)
        self.check_params({"default", "rules", "domains", "budget_usd"})
        if not self.params.get("default"):
            raise ConfigError("strategy policy: parameter 'default' (a model) is required")
        self.default = str(self.params["default"])
        try:
            self.rules = [
                PolicyRule(
                    name=str(r.get("name", f"rule-{i}")),
                    model=str(r["model"]),
                    keywords=tuple(r.get("keywords", ())),
                    min_chars=r.get("min_chars"),
                    max_chars=r.get("max_chars"),
                    code=r.get("code"),
                    math=r.get("math"),
                )
                for i, r in enumerate(self.params.get("rules", []))
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"strategy policy: a rule is malformed ({exc!r}); each needs "
                "'model' and optional keywords/min_chars/max_chars/code/math"
            ) from exc
        self.domains = {str(k): str(v) for k, v in dict(self.params.get("domains", {})).items()}
        budget = self.params.get("budget_usd")
        self.budget = None if budget is None else float(budget)

    def models(self) -> set[str]:
        return {self.default, *(r.model for r in self.rules), *self.domains.values()}

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        by_name = {c.name: c for c in candidates}
        target, reason = self.default, "default model"
        if request.domain and request.domain in self.domains:
            target, reason = self.domains[request.domain], f"domain {request.domain!r}"
        else:
            for rule in self.rules:
                if rule.matches(request.text, request.features):
                    target, reason = rule.model, f"rule {rule.name!r}"
                    break
        if target not in by_name:
            fallback = max(candidates, key=lambda c: (c.quality_rank, c.name))
            target, reason = fallback.name, f"{reason} wanted {target!r} (unavailable)"
        tokens = request.features.est_tokens
        if self.budget is not None and by_name[target].est_cost(tokens) > self.budget:
            down = downgrade(candidates, tokens, self.budget)
            reason += (
                f"; estimated ${by_name[target].est_cost(tokens):.4f} over budget "
                f"${self.budget:.4f}, downgraded"
            )
            target = down.name
        return Choice(target, reason)
