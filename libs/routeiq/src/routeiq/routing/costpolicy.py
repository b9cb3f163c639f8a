"""The cost-aware policy over N candidates, and λ calibrated to an operator's target.

For predicted qualities ``q̂`` (n, m) and per-request costs ``c`` (n, m, USD), the policy
serves, per request,

    argmax_j  q̂_j − λ · c_j / scale          (exact ties → the cheaper candidate)

``scale`` is a reference cost (the most expensive candidate's mean cost on the rows the
trainer evaluated, so λ = 0.1 means "give up 0.1 quality to avoid that model's average
price"). Raising λ never raises the chosen cost, nor the chosen predicted quality, on any
request, so the mean cost and mean predicted quality of the policy are non-increasing in λ
and a target is met by bisection:

* ``cost_per_1k_usd``: the smallest λ whose mean cost per 1,000 requests is at most the target;
* ``quality_floor``: the largest λ whose mean *predicted* quality stays at or above it;
* ``lambda``: λ itself.

Calibration reads predictions and prices only, never labels: the gateway runs it on live
traffic, and the evaluation runs it on the test rows without looking at their grades.
The two-model special case, a strong-call share, is the threshold strategy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


class Priced(Protocol):
    """A candidate the downgrade rule can weigh (``ModelOption`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def quality_rank(self) -> float: ...
    def est_cost(self, input_tokens: int, output_tokens: int | None = None) -> float: ...


P = TypeVar("P", bound=Priced)

TARGET_KINDS = ("cost_per_1k_usd", "quality_floor", "lambda")
# λ is searched on [0, LAMBDA_MAX]: at λ = 1e4 the cheapest candidate wins every request
# unless another is within 1e-4 of its scaled cost, which is as cheap as routing gets.
LAMBDA_MAX = 1e4
LAMBDA_MIN = 1e-6
# Log-space halvings of [LAMBDA_MIN, LAMBDA_MAX]: λ to within a factor of 1 + 1e-7, far
# finer than a window of live requests can tell apart (the gateway recalibrates every 100).
_ITERATIONS = 28


@dataclass(frozen=True)
class Target:
    """What the operator asks the policy to hold."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ConfigError(f"unknown target {self.kind!r}; use one of {', '.join(TARGET_KINDS)}")
        if not np.isfinite(self.value) or self.value < 0:
            raise ConfigError(f"target {self.kind} must be a finite number >= 0")
        if self.kind == "quality_floor" and self.value > 1:
            raise ConfigError("target quality_floor is a quality in [0, 1]")

    @classmethod
    def parse(cls, raw: Any) -> Target:
        """``{"cost_per_1k_usd": 2.5}`` (exactly one key) → a target."""
        if isinstance(raw, Target):
            return raw
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ConfigError(
                "target is one of {cost_per_1k_usd: X}, {quality_floor: Q} or {lambda: L}"
            )
        ((kind, value),) = raw.items()
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"target {kind} must be a number, got {value!r}") from exc
        return cls(str(kind), number)

    def describe(self) -> dict[str, float]:
        return {self.kind: self.value}


def cost_scale(costs: F64) -> float:
    """The reference cost: the most expensive candidate's mean cost (1.0 if all are free)."""
    if costs.size == 0:
        return 1.0
    scale = float(np.max(np.mean(costs, axis=0)))
    return scale if scale > 0 and np.isfinite(scale) else 1.0


def cost_rank(costs: F64) -> F64:
    """Each candidate's cost rank within its row (0 = cheapest): the tie-breaker."""
    return np.argsort(np.argsort(costs, axis=1, kind="stable"), axis=1).astype(np.float64)


def choose(predicted: F64, costs: F64, lam: float, scale: float, *, rank: F64 | None = None) -> I64:
    """Per row, the candidate the policy serves at ``lam``."""
    utility = predicted - (lam / scale) * costs
    # Exact ties go to the cheaper candidate: a tiny penalty by cost rank within the row.
    tie = cost_rank(costs) if rank is None else rank
    return np.asarray(np.argmax(utility - 1e-12 * tie, axis=1), dtype=np.int64)


def outcome(
    predicted: F64,
    costs: F64,
    lam: float,
    scale: float,
    weights: F64 | None = None,
    *,
    rank: F64 | None = None,
) -> tuple[float, float]:
    """(mean cost, mean predicted quality) of the policy at ``lam`` (weighted rows)."""
    a = choose(predicted, costs, lam, scale, rank=rank)
    rows = np.arange(len(a))
    w = np.ones(len(a)) if weights is None else weights
    total = float(w.sum()) or 1.0
    return (
        float((w * costs[rows, a]).sum() / total),
        float((w * predicted[rows, a]).sum() / total),
    )


def calibrate(
    predicted: F64,
    costs: F64,
    target: Target,
    *,
    scale: float,
    weights: F64 | None = None,
) -> float:
    """λ that meets ``target`` on these rows (predictions and costs only)."""
    if target.kind == "lambda":
        return target.value
    if len(predicted) == 0:
        return 0.0
    rank = cost_rank(costs)
    if target.kind == "cost_per_1k_usd":
        budget = target.value / 1000.0

        def cheap_enough(lam: float) -> bool:
            return outcome(predicted, costs, lam, scale, weights, rank=rank)[0] <= budget + 1e-15

        if cheap_enough(0.0):
            return 0.0
        if not cheap_enough(LAMBDA_MAX):
            return LAMBDA_MAX  # unreachable: serve as cheaply as the policy can
        # The smallest λ that is cheap enough.
        return _bisect(cheap_enough, want_smallest_true=True)

    floor = target.value

    def good_enough(lam: float) -> bool:
        return outcome(predicted, costs, lam, scale, weights, rank=rank)[1] >= floor - 1e-12

    if not good_enough(0.0):
        return 0.0  # even the best predicted quality is below the floor
    if good_enough(LAMBDA_MAX):
        return LAMBDA_MAX
    # The largest λ that still keeps the floor.
    return _bisect(lambda lam: not good_enough(lam), want_smallest_true=False)


def _bisect(turns_true: Any, *, want_smallest_true: bool) -> float:
    """Bisect log λ on [LAMBDA_MIN, LAMBDA_MAX] for where a monotone predicate turns true
    (false below, true above); return the first true (or the last false) λ."""
    lo, hi = np.log(LAMBDA_MIN), np.log(LAMBDA_MAX)
    if turns_true(LAMBDA_MIN):
        return LAMBDA_MIN if want_smallest_true else 0.0
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2
        if turns_true(float(np.exp(mid))):
            hi = mid
        else:
            lo = mid
    return float(np.exp(hi if want_smallest_true else lo))


def downgrade(candidates: Sequence[P], input_tokens: int, budget_usd: float) -> P:
    """The cost rule's pick when a request must be cheaper: the strongest candidate estimated
    at or under ``budget_usd`` for this request, else the cheapest (policy's ``budget_usd``
    and a team over its soft budget both use it)."""
    if not candidates:
        raise ConfigError("downgrade needs at least one candidate")
    within = [c for c in candidates if c.est_cost(input_tokens) <= budget_usd]
    if within:
        return max(within, key=lambda c: (c.quality_rank, c.name))
    return min(candidates, key=lambda c: (c.est_cost(input_tokens), c.name))
