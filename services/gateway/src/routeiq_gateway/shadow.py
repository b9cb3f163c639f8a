"""Shadow sampling: for a share of each team's requests, after the client has its answer, the
other candidate model(s) answer the same question off the request path, the blind judge grades
every answer, and the verdict is published as ``Feedback`` (one job:
``routeiq_gateway.shadow_jobs``).

The request path only draws a number and puts a job on a bounded queue (``offer``: no I/O, no
await, never raises); a full queue drops the job and counts it. One worker task takes jobs in
turn, so shadow traffic never competes with itself. It starts a job only while the gateway's
process has CPU to spare (``CpuGauge``: under ``cpu_limit`` cores over the last second): a
saturated gateway sheds shadow work, since any CPU a job takes then, in this process or beside
it (the worker, a local upstream), lengthens the clients' tail. It hands each job to a runner:

- by default the shadow worker process (``routeiq_gateway.shadow_worker``), at the lowest CPU
  priority, so that the shadow and judge calls (LiteLLM's request building and response
  parsing, several ms of CPU each) run outside the serving process and only on CPU it leaves;
- or, with ``shadow_process=false`` (and in unit tests), on the gateway's own event loop.

Either way the fate is counted and the verdict published here, in the gateway, through its
publisher; shadow answers go to the judge only, never to a topic. At shutdown (the app's
lifespan, ``aclose``) queued jobs get ``drain_s`` to finish; then the job in progress is
cancelled, keeping its whole reservation, and the rest are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from redis.asyncio import Redis
from routeiq.errors import ConfigError
from routeiq.routing.oracle import Oracle

from routeiq_gateway.config import ModelFile
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.routing import Plan
from routeiq_gateway.settings import GatewaySettings
from routeiq_gateway.shadow_jobs import (
    ShadowConfig,
    ShadowJob,
    ShadowJobs,
    ShadowResult,
    ShadowUpstream,
    WorkerSpec,
)
from routeiq_gateway.upstream import UpstreamOutcome

logger = logging.getLogger(__name__)


def shadow_config(settings: GatewaySettings, model_file: ModelFile) -> ShadowConfig | None:
    """The settings' shadow sampling, checked against the model file; None when off."""
    cheap, strong = settings.shadow_oracle_cheap, settings.shadow_oracle_strong
    if (cheap is None) != (strong is None):
        raise ConfigError("set both shadow_oracle_cheap and shadow_oracle_strong, or neither")
    oracle = Oracle(cheap, strong) if cheap is not None and strong is not None else None
    password = settings.redis.password
    worker = WorkerSpec(
        config_path=str(settings.config_path),
        redis_url=settings.redis.url,
        redis_password=password.get_secret_value() if password else None,
        nice=settings.shadow_nice,
    )
    config = ShadowConfig(
        judge_group=settings.shadow_judge_group,
        fraction=settings.shadow_fraction,
        team_fractions=dict(settings.shadow_team_fractions),
        daily_usd=settings.shadow_daily_usd,
        queue_size=settings.shadow_queue_size,
        oracle=oracle,
        prefix=settings.keys_prefix,
        worker=worker if settings.shadow_process else None,
        cpu_limit=settings.shadow_cpu_limit,
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


class ShadowRunner(Protocol):
    """Runs one job at a time (``ShadowJobs`` inline, ``ShadowProcess`` in the worker)."""

    async def run(self, job: ShadowJob) -> ShadowResult: ...

    async def aclose(self) -> None: ...


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


def inline_runner(config: ShadowConfig, host: ShadowHost) -> ShadowJobs:
    """Jobs run on the gateway's loop, with its upstream and its budget Redis."""
    return ShadowJobs(config, upstream=host.upstream, redis=host.shadow_redis, clock=host.clock)


class CpuGauge:
    """This process's CPU use, in cores, over about the last ``window_s`` (all its threads:
    the event loop, Kafka's, model sync's). Read by the one shadow task, never the request
    path; each read is a sample."""

    def __init__(
        self,
        window_s: float = 1.0,
        *,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s, self.cpu, self.clock = window_s, cpu, clock
        self._samples: deque[tuple[float, float]] = deque()

    def cores(self) -> float | None:
        """Cores used since the oldest sample in the window; None until half a window of
        samples exists (no history yet, or none recent: after an idle spell the average over
        it would hide a busy second)."""
        now, used = self.clock(), self.cpu()
        samples = self._samples
        samples.append((now, used))
        while len(samples) > 1 and (
            now - samples[0][0] > 2 * self.window_s
            or (len(samples) > 2 and now - samples[1][0] >= self.window_s)
        ):
            samples.popleft()
        then, before = samples[0]
        if now - then < self.window_s / 2:
            return None
        return (used - before) / (now - then)


PAUSE_S = 0.1  # while the gateway is busy, how often the shadow task looks again


class ShadowSampler:
    """Draws, queues and runs shadow jobs; ``offer`` is the only call on the request path."""

    def __init__(
        self,
        config: ShadowConfig,
        host: ShadowHost,
        *,
        runner: ShadowRunner | None = None,
        rng: random.Random | None = None,
        gauge: CpuGauge | None = None,
    ) -> None:
        self.config, self.host = config, host
        self.runner = runner if runner is not None else inline_runner(config, host)
        self.gauge = gauge or CpuGauge()
        # Not security-sensitive: it only draws which requests are shadowed.
        self.rng = rng or random.Random()  # noqa: S311
        self.queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=config.queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._closing = asyncio.Event()  # set by ``aclose``: wakes a job waiting for headroom

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

    async def _headroom(self) -> None:
        """Return once the gateway used under ``cpu_limit`` cores over the last second, or
        once it is closing (no client left to protect: the drain may use the CPU)."""
        while not self._closing.is_set() and (
            (cores := self.gauge.cores()) is None or cores >= self.config.cpu_limit
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), PAUSE_S)

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._headroom()
                result = await self.runner.run(job)
                if result.feedback is not None:
                    self.host.publish_feedback(result.feedback)
                fate = result.fate
            except Exception:  # one bad job must not stop the worker
                logger.exception("shadow job for decision %s failed", job.decision_id)
                fate = "error"
            finally:
                self.queue.task_done()
            self.host.metrics.shadow.labels(fate).inc()

    async def aclose(self, *, drain_s: float | None = None) -> None:
        """Stop shadowing: no new jobs; queued ones get ``drain_s`` (default: the config's)
        to finish, then the worker is cancelled, the runner stopped, and what is left is
        dropped and logged."""
        self._closed = True
        self._closing.set()
        worker, self._worker = self._worker, None
        wait_s = self.config.drain_s if drain_s is None else drain_s
        if worker is not None and not worker.done() and wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), wait_s)
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self.runner.aclose()
        dropped = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()
            dropped += 1
        if dropped:
            logger.warning("shadow sampling stopped: %d queued job(s) dropped", dropped)
