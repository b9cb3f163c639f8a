"""The shadow worker process: shadow jobs run here, at the lowest CPU priority, instead of on
the gateway's event loop (``routeiq_gateway.shadow``).

Why a process: a shadow job is two or more LiteLLM calls (the other candidate's answer, the
judge's verdict), several ms of CPU each for request building and response parsing. On the
serving event loop that CPU is taken from clients: measured with ``bench/shadow.py`` at a 0 ms
upstream (the gateway CPU-bound), 10 % shadowing raised p99 by 13 %. Here it runs at nice 19
(``shadow_nice``), so it only gets CPU that serving leaves; and the gateway hands it a job only
while it has CPU to spare itself (``routeiq_gateway.shadow.CpuGauge``), since the worker's
calls still cost CPU beside it (the provider's client, a local upstream).

The gateway (``ShadowProcess``) starts the worker with ``python -m routeiq_gateway.shadow_worker``
on its first job and talks to it over its stdin and stdout, one JSON line each way: first a
spec (the model file, Redis and budget settings), then a job per line, each answered by its
result line (``ShadowResult``: the fate and the ``Feedback`` record to publish; the gateway
counts and publishes, so the worker needs no Kafka). Jobs carry the prompt and answers: they
cross a local pipe to the judge, never a topic. Anything else the worker prints goes to the
gateway's log (stderr), never into the protocol.

A worker that dies fails its job (fate ``error``) and is started again on the next. At shutdown
the gateway sends SIGTERM: the job in progress is cancelled, keeping its budget reservation,
and the worker exits (killed after ``STOP_S``). When the gateway dies, the worker reads the end
of its stdin and exits after its current job.
"""

from __future__ import annotations

import os

# Set before litellm is imported (it fetches its cost map at import time unless told not to).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

from pydantic import SecretStr
from routeiq.service import configure_logging
from routeiq.settings import RedisSettings

from routeiq_gateway.config import load_model_file
from routeiq_gateway.shadow_jobs import (
    ShadowConfig,
    ShadowJob,
    ShadowJobs,
    ShadowResult,
    WorkerSpec,
    decode_job,
    encode_job,
)
from routeiq_gateway.upstream import LITELLM_LOGGERS, Upstream, build_router

logger = logging.getLogger(__name__)

LINE_LIMIT = 64 * 1024 * 1024  # a job carries the whole conversation and both answers
STOP_S = 2.0  # after SIGTERM, how long the worker may take to settle its budget and exit
REDIS_TIMEOUT_S = 2.0  # off the request path: a slow Redis only delays a shadow job


class ShadowProcess:
    """The gateway's side: one worker process, one job in flight (the sampler runs jobs in
    turn), started on the first job and again after it dies."""

    def __init__(self, config: ShadowConfig) -> None:
        if config.worker is None:
            raise ValueError("a shadow worker process needs the config's worker spec")
        self.config, self.spec = config, config.worker
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None before the first job or after it died)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def run(self, job: ShadowJob) -> ShadowResult:
        proc = await self._started()
        assert proc.stdin is not None  # both are pipes
        assert proc.stdout is not None
        try:
            proc.stdin.write(encode_job(job))
            await proc.stdin.drain()
            line = await proc.stdout.readline()
        except (ConnectionError, ValueError) as exc:  # a closed pipe; a garbled, endless line
            logger.warning("shadow worker pipe failed: %s", exc)
            line = b""
        if not line.endswith(b"\n"):
            await self._stop()
            logger.warning(
                "shadow worker died during job %s; restarting on the next job", job.decision_id
            )
            return ShadowResult("error")
        return ShadowResult.decode(line)

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        spec = {"worker": asdict(self.spec), "shadow": self.config.budget_json(), "log": level}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "routeiq_gateway.shadow_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        # Set from here, before the worker's imports: so they too run at the low priority.
        # (Never below the gateway's own niceness, which an unprivileged process cannot do.)
        nice = max(self.spec.nice, os.getpriority(os.PRIO_PROCESS, 0))
        os.setpriority(os.PRIO_PROCESS, self._proc.pid, nice)
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(spec).encode() + b"\n")
        logger.info("shadow worker started (pid %d, nice %d)", self._proc.pid, nice)
        return self._proc

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            proc.terminate()  # the worker cancels its job, keeping the reservation, and exits
            try:
                await asyncio.wait_for(proc.wait(), STOP_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc.returncode not in (0, -signal.SIGTERM):
            logger.warning("shadow worker exited with code %s", proc.returncode)

    async def aclose(self) -> None:
        await self._stop()


async def serve(out: BinaryIO) -> int:
    """The worker: read the spec, then run each job read from stdin and write its result."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = json.loads(await reader.readline())
    worker = WorkerSpec(**spec["worker"])
    config = ShadowConfig.from_budget_json(spec["shadow"])
    configure_logging(str(spec.get("log", "info")), quiet=LITELLM_LOGGERS)
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM (the gateway stopping) cancels the job in progress: ShadowJobs keeps its
    # reservation. Ctrl-C reaches the whole process group; the gateway stops its worker itself.
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    model_file = load_model_file(Path(worker.config_path))
    model_file.apply_environment()
    upstream = Upstream(router=build_router(model_file), model_file=model_file)
    password = SecretStr(worker.redis_password) if worker.redis_password else None
    redis = RedisSettings(url=worker.redis_url, password=password).async_client(
        timeout_s=REDIS_TIMEOUT_S
    )
    jobs = ShadowJobs(config, upstream=upstream, redis=redis)
    try:
        while line := await reader.readline():
            out.write((await run_line(jobs, line)).encode())
            out.flush()
    except asyncio.CancelledError:
        logger.info("shadow worker stopped")
    except BrokenPipeError:  # the gateway is gone: nobody to report to
        logger.info("shadow worker: the gateway closed its pipe; stopping")
    finally:
        await redis.aclose()
    return 0


async def run_line(jobs: ShadowJobs, line: bytes) -> ShadowResult:
    """One job line's result; a bad line or a failed job is an ``error``, never the end."""
    try:
        job = decode_job(line)
    except (ValueError, TypeError, KeyError) as exc:
        logger.error("shadow worker: unreadable job line dropped: %s", exc)
        return ShadowResult("error")
    try:
        return await jobs.run(job)
    except Exception:  # one bad job must not stop the worker
        logger.exception("shadow job for decision %s failed", job.decision_id)
        return ShadowResult("error")


def main() -> int:
    # The protocol gets its own copy of stdout; fd 1 becomes stderr, so that whatever a
    # library prints lands in the log and can never corrupt a result line.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return asyncio.run(serve(out))


if __name__ == "__main__":
    sys.exit(main())
