"""One shadow job, start to end: the other candidate(s) answer the served request's question,
the blind judge (``routeiq.routing.judge``) grades every answer, and the verdict becomes a
``Feedback`` record, all within the team's daily budget.

``ShadowJobs.run`` does this wherever it is called: on the gateway's event loop (``inline``) or
in the shadow worker process (``routeiq_gateway.shadow_worker``), which is why it returns the
job's fate and record instead of counting or publishing them itself. Jobs and results cross
that process boundary as JSON lines (``encode_job`` / ``decode_job``, ``ShadowResult``); no
pickle.

Each team has a daily USD budget, kept in Redis (``{prefix}:shadow:{team}:d:{YYYYMMDD}``) so
every replica shares it: a job first reserves its estimated cost (``estimate``: the shadow
answers and the judge's verdict) and is skipped, its reservation taken back, when the day's
total would pass the budget; afterwards the reservation is corrected to what the shadow and
judge calls cost. So a day's spend passes the budget by at most what the jobs in flight when it
was reached (one per replica) cost beyond their estimates. The budget fails closed: while
Redis does not answer, nothing is shadowed. A job cancelled mid-call (shutdown) keeps its whole
reservation: the provider may bill that call anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from routeiq.routing.judge import (
    GRADE_QUALITY,
    BlindJudge,
    BlindVerdict,
    Messages,
    render_prompt,
)
from routeiq.routing.oracle import Oracle

from routeiq_gateway.upstream import UpstreamOutcome, response_text

logger = logging.getLogger(__name__)

DAY_TTL_S = 2 * 24 * 3600  # a day's shadow spend outlives its day by a day
NO_TEAM = "-"
JUDGE_LINE_TOKENS = 8  # "A: partial" and a line break, with room to spare


class ShadowUpstream(Protocol):
    """What shadowing needs of ``routeiq_gateway.upstream.Upstream``."""

    async def complete(
        self, group: str, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> tuple[Any, UpstreamOutcome]: ...

    def cost(self, group: str, input_tokens: int, output_tokens: int) -> float | None: ...


@dataclass(frozen=True)
class ShadowConfig:
    """Who is shadowed, how often, at what daily cost, who judges, and where jobs run."""

    judge_group: str  # a model group of the model file, called like any other
    fraction: float = 0.0  # every team's share unless ``team_fractions`` names it
    team_fractions: Mapping[str, float] = field(default_factory=dict)
    daily_usd: float = 1.0  # per team (requests without a team share one budget)
    queue_size: int = 256
    oracle: Oracle | None = None  # cheap/strong pair for the verdict's cell and policy
    prefix: str = "routeiq"  # of the Redis keys
    drain_s: float = 5.0  # at shutdown, how long queued jobs may still run
    # Where jobs run: None on the gateway's event loop; else the worker process's spec.
    worker: WorkerSpec | None = None
    # A job starts only while the gateway's process used fewer cores than this over the last
    # second (``routeiq_gateway.shadow.CpuGauge``); a saturated gateway queues, then drops.
    cpu_limit: float = 0.7

    def fraction_for(self, team: str | None) -> float:
        return self.team_fractions.get(team or NO_TEAM, self.fraction)

    @property
    def enabled(self) -> bool:
        return self.fraction > 0 or any(f > 0 for f in self.team_fractions.values())

    def budget_json(self) -> dict[str, Any]:
        """What a job runner needs of this config, as JSON (for the worker process)."""
        oracle = [self.oracle.cheap, self.oracle.strong] if self.oracle else None
        return {
            "judge_group": self.judge_group,
            "daily_usd": self.daily_usd,
            "prefix": self.prefix,
            "oracle": oracle,
        }

    @classmethod
    def from_budget_json(cls, data: Mapping[str, Any]) -> ShadowConfig:
        oracle = data.get("oracle")
        return cls(
            judge_group=str(data["judge_group"]),
            daily_usd=float(data["daily_usd"]),
            prefix=str(data["prefix"]),
            oracle=Oracle(str(oracle[0]), str(oracle[1])) if oracle else None,
        )


@dataclass(frozen=True)
class WorkerSpec:
    """How the gateway starts its shadow worker process: the model file its upstream calls
    are configured by, the Redis its budgets live in, and the CPU niceness it runs at."""

    config_path: str
    redis_url: str
    redis_password: str | None = None
    nice: int = 19


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """A served request to shadow: the question, the served answer and who else to ask."""

    decision_id: str
    team: str | None
    messages: list[dict[str, Any]]
    query: str
    served: str
    answer: str
    others: tuple[str, ...]
    input_tokens: int
    output_tokens: int


def encode_job(job: ShadowJob) -> bytes:
    """One JSON line (texts included: it goes down a pipe to the worker, never to a topic)."""
    return json.dumps(asdict(job), separators=(",", ":")).encode() + b"\n"


def decode_job(line: bytes) -> ShadowJob:
    data = json.loads(line)
    return ShadowJob(**{**data, "others": tuple(data["others"])})


@dataclass(frozen=True)
class ShadowResult:
    """A job's fate (the ``routeiq_gateway_shadow_total`` label) and, when judged, the
    ``Feedback`` record to publish."""

    fate: str
    feedback: dict[str, Any] | None = None

    def encode(self) -> bytes:
        return json.dumps({"fate": self.fate, "feedback": self.feedback}).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> ShadowResult:
        data = json.loads(line)
        return cls(fate=str(data["fate"]), feedback=data.get("feedback"))


class ShadowJobs:
    """Runs shadow jobs one at a time against ``upstream``, budgets in ``redis``."""

    def __init__(
        self,
        config: ShadowConfig,
        *,
        upstream: ShadowUpstream,
        redis: Redis | None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config, self.upstream, self.redis, self.clock = config, upstream, redis, clock
        # Not security-sensitive: it only shuffles the answers the judge sees.
        rng = rng or random.Random()  # noqa: S311
        self.judge = BlindJudge(call=self._judge_call, model=config.judge_group, rng=rng)
        self._judge_cost = 0.0

    async def run(self, job: ShadowJob) -> ShadowResult:
        """Shadow one job: its fate, and the verdict's record when it was judged."""
        estimate = self.estimate(job)
        reserved = await self._reserve(job.team, estimate)
        if reserved is not None:
            return ShadowResult(reserved)
        answers, spent, cut_short = {job.served: job.answer}, 0.0, False
        self._judge_cost = 0.0
        try:
            for group in job.others:
                try:
                    response, outcome = await self.upstream.complete(group, job.messages, {})
                except Exception as exc:  # noqa: BLE001 - any provider failure ends the job
                    logger.info("shadow call to %s failed: %s", group, exc)
                    return ShadowResult("shadow_failed")
                spent += outcome.cost_usd or 0.0
                if outcome.served_group != group:
                    # A fallback answered: that text is not ``group``'s, so it cannot be graded
                    # as ``group``'s answer.
                    return ShadowResult("shadow_failed")
                answers[group] = response_text(response)
            verdict = await self.judge.judge(job.query, answers)
        except asyncio.CancelledError:
            cut_short = True
            raise
        finally:
            correction = spent + self._judge_cost - estimate
            # Cancelled mid-call: the reservation is never given back, only raised to what is
            # known to be spent.
            await self._settle(job.team, max(correction, 0.0) if cut_short else correction)
        if not isinstance(verdict, BlindVerdict):
            logger.info("shadow verdict for %s dropped: %s", job.decision_id, verdict.reason)
            return ShadowResult("unjudged")
        return ShadowResult("judged", self.feedback(job, verdict))

    def estimate(self, job: ShadowJob) -> float:
        """The job's cost before it runs: each other model answering the served request's
        prompt at the served answer's length, and the judge reading the question and every
        answer (its instructions at about 4 characters a token) to write a line per answer."""
        cost = self.upstream.cost
        shown = len(job.others) + 1
        answers = sum(cost(g, job.input_tokens, job.output_tokens) or 0.0 for g in job.others)
        read = len(render_prompt(".", [""] * shown)) // 4 + job.input_tokens
        read += shown * job.output_tokens
        judge = cost(self.config.judge_group, read, JUDGE_LINE_TOKENS * shown) or 0.0
        return answers + judge

    def feedback(self, job: ShadowJob, verdict: BlindVerdict) -> dict[str, Any]:
        """The ``Feedback`` record of a verdict: the served model's grade is its score."""
        return {
            "feedback_id": str(uuid.uuid4()),
            "decision_id": job.decision_id,
            "score": GRADE_QUALITY[verdict.grades[job.served]],
            "source": "judge",
            "created_at": int(self.clock() * 1000),
            "candidate": None,
            "cost_usd": None,
            "latency_ms": None,
            "trace_id": None,
            **verdict.feedback_fields(self.config.oracle),
        }

    async def _judge_call(self, messages: Messages) -> str:
        response, outcome = await self.upstream.complete(
            self.config.judge_group, list(messages), {"temperature": 0}
        )
        self._judge_cost += outcome.cost_usd or 0.0
        return response_text(response)

    def _key(self, team: str | None) -> str:
        day = datetime.fromtimestamp(self.clock(), tz=UTC)
        return f"{self.config.prefix}:shadow:{team or NO_TEAM}:d:{day:%Y%m%d}"

    async def _reserve(self, team: str | None, estimate: float) -> str | None:
        """Reserve ``estimate`` of the team's day; the fate that stops the job, or None."""
        if self.redis is None:
            return "budget_unavailable"
        key = self._key(team)
        try:
            # Add first, then look: every replica sees the others' reservations.
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incrbyfloat(key, estimate)
                pipe.expire(key, DAY_TTL_S)
                total, _ = await pipe.execute()
            if float(total) > self.config.daily_usd:
                await self.redis.incrbyfloat(key, -estimate)
                return "over_budget"
        except (RedisError, OSError) as exc:
            logger.info("shadow budget unavailable (no shadowing): %s", exc)
            return "budget_unavailable"
        return None

    async def _settle(self, team: str | None, correction: float) -> None:
        """Replace the reservation by what the calls cost (best effort: a lost correction
        leaves the estimate counted)."""
        if self.redis is None or correction == 0:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.redis.incrbyfloat(self._key(team), correction)

    async def aclose(self) -> None:
        """Nothing to stop: the Redis client is its owner's to close."""
