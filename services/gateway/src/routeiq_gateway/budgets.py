"""Team budgets on real spend: per day and per month (UTC), accumulated atomically in Redis.

Each served request adds the cost its ``RouterDecision`` event carries (usage × the model
file's prices) to ``{prefix}:spend:{team}:d:{YYYYMMDD}`` and ``:m:{YYYYMM}`` with
INCRBYFLOAT, so every replica adds to the same totals. A team past ``soft_fraction`` of a
limit has its routed requests downgraded by the cost rule (``costpolicy.downgrade``); a team
at a limit is refused with OpenAI's ``insufficient_quota`` 429.

Budgets fail open: while Redis does not answer, requests are served and not counted, and the
``redis`` dependency shows degraded on ``/health/ready`` (refusing every team because the
ledger is down would turn a Redis blip into an outage).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError
from routeiq.dependencies import Dependency
from routeiq.routing.costpolicy import downgrade
from routeiq.routing.strategies import ModelOption, RouteInput

from routeiq_gateway.config import BudgetSpec
from routeiq_gateway.errors import QuotaExceeded
from routeiq_gateway.routing import Plan

Level = Literal["ok", "soft", "hard"]
# A day's total outlives its day by a day and a month's by a few days: enough for the
# report of the period just ended, and Redis forgets old periods on its own.
DAY_TTL_S = 2 * 24 * 3600
MONTH_TTL_S = 35 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A team's spend this day and month against its budget (``spec`` None: no budget)."""

    team: str
    day_usd: float
    month_usd: float
    spec: BudgetSpec | None

    @property
    def level(self) -> Level:
        spec = self.spec
        if spec is None:
            return "ok"
        pairs = [(self.day_usd, spec.daily_usd), (self.month_usd, spec.monthly_usd)]
        limits = [(spent, limit) for spent, limit in pairs if limit is not None]
        if any(spent >= limit for spent, limit in limits):
            return "hard"
        if any(spent >= limit * spec.soft_fraction for spent, limit in limits):
            return "soft"
        return "ok"

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "team": self.team,
            "day_usd": self.day_usd,
            "month_usd": self.month_usd,
            "daily_usd": spec.daily_usd if spec else None,
            "monthly_usd": spec.monthly_usd if spec else None,
            "soft_fraction": spec.soft_fraction if spec else None,
            "level": self.level,
        }


@dataclass(kw_only=True, eq=False)
class Budgets:
    """The spend ledger in Redis and the budgets of the model file's ``routeiq.budgets``."""

    redis: Redis
    dependency: Dependency
    specs: dict[str, BudgetSpec]
    prefix: str = "routeiq"
    clock: Callable[[], float] = time.time

    def spec(self, team: str) -> BudgetSpec | None:
        return self.specs.get(team) or self.specs.get("*")

    def _keys(self, team: str) -> tuple[str, str]:
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        base = f"{self.prefix}:spend:{team}"
        return f"{base}:d:{now:%Y%m%d}", f"{base}:m:{now:%Y%m}"

    async def state(self, team: str) -> BudgetState:
        """The team's spend now; all zero while Redis does not answer (fail open)."""
        day, month = self._keys(team)
        try:
            raw = await self.redis.mget([day, month])
        except (RedisError, OSError) as exc:
            self.dependency.failed(exc)
            raw = [None, None]
        else:
            self.dependency.recovered()
        return BudgetState(team, float(raw[0] or 0.0), float(raw[1] or 0.0), self.spec(team))

    async def add(self, team: str, cost_usd: float) -> None:
        """Add one request's cost to the team's day and month, atomically per key."""
        if cost_usd <= 0:
            return
        day, month = self._keys(team)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incrbyfloat(day, cost_usd)
                pipe.expire(day, DAY_TTL_S)
                pipe.incrbyfloat(month, cost_usd)
                pipe.expire(month, MONTH_TTL_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.dependency.failed(exc)
            return
        self.dependency.recovered()

    async def teams(self, also: Iterable[str] = ()) -> list[str]:
        """Teams with a budget, with spend this month, or in ``also`` ("*" left out)."""
        names = {t for t in self.specs if t != "*"} | set(also)
        month = f"{datetime.fromtimestamp(self.clock(), tz=UTC):%Y%m}"
        head, tail = f"{self.prefix}:spend:", f":m:{month}"
        try:
            async for key in self.redis.scan_iter(match=f"{head}*{tail}", count=500):
                text = key.decode() if isinstance(key, bytes) else str(key)
                names.add(text[len(head) : -len(tail)])
        except (RedisError, OSError) as exc:
            self.dependency.failed(exc)
        return sorted(names)

    async def admit(self, team: str | None) -> BudgetState | None:
        """The team's state for a new request; ``QuotaExceeded`` at the hard limit."""
        if team is None:
            return None
        state = await self.state(team)
        if state.level == "hard":
            raise QuotaExceeded(
                f"team {team!r} has spent its budget (${state.day_usd:.4f} today, "
                f"${state.month_usd:.4f} this month); requests resume with the next period"
            )
        return state


def over_soft_budget(plan: Plan, state: BudgetState | None) -> Plan:
    """``plan`` downgraded by the cost rule when its team is over the soft limit; a model
    named directly is served as asked (the client chose it)."""
    if state is None or state.spec is None or state.level != "soft":
        return plan
    if plan.decision.strategy == "direct" or len(plan.candidates) < 2:
        return plan
    tokens = RouteInput(plan.request.text).est_tokens
    down: ModelOption = downgrade(plan.candidates, tokens, state.spec.downgrade_request_usd)
    if down.name == plan.group:
        return plan
    decision = dataclasses.replace(
        plan.decision,
        selected=down.name,
        reason=f"{plan.decision.reason}; team {state.team!r} over its soft budget, downgraded",
        # Served for certain, whatever the strategy drew: the logged propensity says so.
        propensities={c.name: float(c.name == down.name) for c in plan.candidates},
        exploration=False,
    )
    return dataclasses.replace(plan, decision=decision)
