"""Shadow sampling: for a share of each team's requests, after the client has its answer, the
other candidate model(s) answer the same question off the request path, the blind judge
(``routeiq.routing.judge``) grades every answer, and the verdict is published as ``Feedback``.

The request path only draws a number and puts a job on a bounded queue (``offer``: no I/O, no
await, never raises); a full queue drops the job and counts it. One worker task takes jobs in
turn, so shadow traffic never competes with itself.

Each team has a daily USD budget, kept in Redis (``{prefix}:shadow:{team}:d:{YYYYMMDD}``) so
every replica shares it: a job first reserves its estimated cost (``estimate``: the shadow
answers and the judge's verdict) and is skipped, its reservation taken back, when the day's
total would pass the budget; afterwards the reservation is corrected to what the shadow and
judge calls cost. So a day's spend passes the budget by at most what the jobs in flight when it
was reached (one per replica) cost beyond their estimates. The budget fails closed: while
Redis does not answer, nothing is shadowed. Shadow answers go to the judge only, never to a
topic. At shutdown (the app's lifespan, ``aclose``) queued jobs get ``drain_s`` to finish;
then the job in progress is cancelled, keeping its whole reservation, and the rest are
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from routeiq.errors import ConfigError
from routeiq.routing.judge import (
    GRADE_QUALITY,
    BlindJudge,
    BlindVerdict,
    Messages,
    render_prompt,
)
from routeiq.routing.oracle import Oracle

from routeiq_gateway.config import ModelFile
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.routing import Plan
from routeiq_gateway.settings import GatewaySettings
from routeiq_gateway.upstream import UpstreamOutcome

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
    """Who is shadowed, how often, at what daily cost, and who judges."""

    judge_group: str  # a model group of the model file, called like any other
    fraction: float = 0.0  # every team's share unless ``team_fractions`` names it
    team_fractions: Mapping[str, float] = field(default_factory=dict)
    daily_usd: float = 1.0  # per team (requests without a team share one budget)
    queue_size: int = 256
    oracle: Oracle | None = None  # cheap/strong pair for the verdict's cell and policy
    prefix: str = "routeiq"  # of the Redis keys
    drain_s: float = 5.0  # at shutdown, how long queued jobs may still run

    def fraction_for(self, team: str | None) -> float:
        return self.team_fractions.get(team or NO_TEAM, self.fraction)

    @property
    def enabled(self) -> bool:
        return self.fraction > 0 or any(f > 0 for f in self.team_fractions.values())


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


def shadow_config(settings: GatewaySettings, model_file: ModelFile) -> ShadowConfig | None:
    """The settings' shadow sampling, checked against the model file; None when off."""
    cheap, strong = settings.shadow_oracle_cheap, settings.shadow_oracle_strong
    if (cheap is None) != (strong is None):
        raise ConfigError("set both shadow_oracle_cheap and shadow_oracle_strong, or neither")
    oracle = Oracle(cheap, strong) if cheap is not None and strong is not None else None
    config = ShadowConfig(
        judge_group=settings.shadow_judge_group,
        fraction=settings.shadow_fraction,
        team_fractions=dict(settings.shadow_team_fractions),
        daily_usd=settings.shadow_daily_usd,
        queue_size=settings.shadow_queue_size,
        oracle=oracle,
        prefix=settings.keys_prefix,
    )
    if not config.enabled:
        return None
    named = [config.judge_group, *((oracle.cheap, oracle.strong) if oracle else ())]
    unknown = sorted(set(named) - set(model_file.model_groups))
    if unknown:
        raise ConfigError(
            f"shadow sampling names model groups the model file lacks: {unknown}; "
            f"groups: {', '.join(model_file.model_groups)}"
        )
    return config


def response_text(response: Any) -> str:
    """The assistant text of an OpenAI-shaped (LiteLLM) completion."""
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    return str(getattr(message, "content", None) or "")


class ShadowHost(Protocol):
    """What the sampler uses of the gateway it serves (``routeiq_gateway.gateway.Gateway``)."""

    @property
    def upstream(self) -> ShadowUpstream: ...

    @property
    def metrics(self) -> GatewayMetrics: ...

    @property
    def shadow_redis(self) -> Redis | None: ...

    def clock(self) -> float: ...

    def publish_feedback(self, record: Mapping[str, Any]) -> None: ...


class ShadowSampler:
    """Draws, queues and runs shadow jobs; ``offer`` is the only call on the request path."""

    def __init__(
        self, config: ShadowConfig, host: ShadowHost, *, rng: random.Random | None = None
    ) -> None:
        self.config, self.host = config, host
        # Not security-sensitive: it only draws which requests are shadowed.
        self.rng = rng or random.Random()  # noqa: S311
        self.queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=config.queue_size)
        self.judge = BlindJudge(call=self._judge_call, model=config.judge_group, rng=self.rng)
        self._worker: asyncio.Task[None] | None = None
        self._judge_cost = 0.0
        self._closed = False

    # ------------------------------------------------------------------ request path

    def offer(self, plan: Plan, answer: str, outcome: UpstreamOutcome) -> None:
        """Maybe queue ``plan``'s request for shadowing. Never raises, never waits: a
        shadow problem must not reach the client."""
        try:
            self._offer(plan, answer, outcome)
        except Exception:  # the client's request is already answered: log, count, go on
            self.host.metrics.shadow.labels("error").inc()
            logger.exception("shadow sampling failed for decision %s", plan.decision_id)

    def _offer(self, plan: Plan, answer: str, outcome: UpstreamOutcome) -> None:
        fraction = self.config.fraction_for(plan.request.team)
        if self._closed or fraction <= 0 or self.rng.random() >= fraction or not answer:
            return
        served = outcome.served_group
        others = tuple(c.name for c in plan.candidates if c.name != served)
        if not others or outcome.status != "SUCCESS":
            return
        job = ShadowJob(
            decision_id=plan.decision_id,
            team=plan.request.team,
            messages=plan.request.messages,
            query=plan.request.text,
            served=served,
            answer=answer,
            others=others,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
        )
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.host.metrics.shadow.labels("dropped_full").inc()
            return
        self.host.metrics.shadow.labels("queued").inc()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    # ------------------------------------------------------------------ off the path

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                fate = await self.run(job)
            except Exception:  # one bad job must not stop the worker
                logger.exception("shadow job for decision %s failed", job.decision_id)
                fate = "error"
            finally:
                self.queue.task_done()
            self.host.metrics.shadow.labels(fate).inc()

    async def run(self, job: ShadowJob) -> str:
        """Shadow one job; returns its fate (the metric label)."""
        estimate = self.estimate(job)
        reserved = await self._reserve(job.team, estimate)
        if reserved is not None:
            return reserved
        answers, spent, cut_short = {job.served: job.answer}, 0.0, False
        self._judge_cost = 0.0
        try:
            for group in job.others:
                try:
                    response, outcome = await self.host.upstream.complete(group, job.messages, {})
                except Exception as exc:  # noqa: BLE001 - any provider failure ends the job
                    logger.info("shadow call to %s failed: %s", group, exc)
                    return "shadow_failed"
                spent += outcome.cost_usd or 0.0
                if outcome.served_group != group:
                    # A fallback answered: that text is not ``group``'s, so it cannot be graded
                    # as ``group``'s answer.
                    return "shadow_failed"
                answers[group] = response_text(response)
            verdict = await self.judge.judge(job.query, answers)
        except asyncio.CancelledError:
            cut_short = True
            raise
        finally:
            correction = spent + self._judge_cost - estimate
            # Cancelled mid-call (shutdown): the provider may bill that call anyway, so the
            # reservation is never given back, only raised to what is known to be spent.
            await self._settle(job.team, max(correction, 0.0) if cut_short else correction)
        if not isinstance(verdict, BlindVerdict):
            logger.info("shadow verdict for %s dropped: %s", job.decision_id, verdict.reason)
            return "unjudged"
        self.host.publish_feedback(self.feedback(job, verdict))
        return "judged"

    def estimate(self, job: ShadowJob) -> float:
        """The job's cost before it runs: each other model answering the served request's
        prompt at the served answer's length, and the judge reading the question and every
        answer (its instructions at about 4 characters a token) to write a line per answer."""
        cost = self.host.upstream.cost
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
            "created_at": int(self.host.clock() * 1000),
            "candidate": None,
            "cost_usd": None,
            "latency_ms": None,
            "trace_id": None,
            **verdict.feedback_fields(self.config.oracle),
        }

    async def _judge_call(self, messages: Messages) -> str:
        response, outcome = await self.host.upstream.complete(
            self.config.judge_group, list(messages), {"temperature": 0}
        )
        self._judge_cost += outcome.cost_usd or 0.0
        return response_text(response)

    def _key(self, team: str | None) -> str:
        day = datetime.fromtimestamp(self.host.clock(), tz=UTC)
        return f"{self.config.prefix}:shadow:{team or NO_TEAM}:d:{day:%Y%m%d}"

    async def _reserve(self, team: str | None, estimate: float) -> str | None:
        """Reserve ``estimate`` of the team's day; the fate that stops the job, or None."""
        redis = self.host.shadow_redis
        if redis is None:
            return "budget_unavailable"
        key = self._key(team)
        try:
            # Add first, then look: every replica sees the others' reservations.
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incrbyfloat(key, estimate)
                pipe.expire(key, DAY_TTL_S)
                total, _ = await pipe.execute()
            if float(total) > self.config.daily_usd:
                await redis.incrbyfloat(key, -estimate)
                return "over_budget"
        except (RedisError, OSError) as exc:
            logger.info("shadow budget unavailable (no shadowing): %s", exc)
            return "budget_unavailable"
        return None

    async def _settle(self, team: str | None, correction: float) -> None:
        """Replace the reservation by what the calls cost (best effort: a lost correction
        leaves the estimate counted)."""
        redis = self.host.shadow_redis
        if redis is None or correction == 0:
            return
        with contextlib.suppress(RedisError, OSError):
            await redis.incrbyfloat(self._key(team), correction)

    async def aclose(self, *, drain_s: float | None = None) -> None:
        """Stop shadowing: no new jobs; queued ones get ``drain_s`` (default: the config's)
        to finish, then the worker is cancelled and what is left is dropped and logged."""
        self._closed = True
        worker, self._worker = self._worker, None
        wait_s = self.config.drain_s if drain_s is None else drain_s
        if worker is not None and not worker.done() and wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), wait_s)
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        dropped = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()
            dropped += 1
        if dropped:
            logger.warning("shadow sampling stopped: %d queued job(s) dropped", dropped)
