"""The shadow worker process, for real: started by the gateway's side on the first job, at
low CPU priority, one JSON line each way, restarted after it dies, stopped at close.

No Redis here (unit tier): the budget fails closed, so each job's fate is
``budget_unavailable``, which still proves the worker read its spec, built its upstream from
the model file and ran the job. Verdicts through a worker on the real stack:
``tests/integration/upstream/test_shadow_judge.py``."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from routeiq.routing.oracle import Oracle
from routeiq_gateway.shadow_jobs import (
    ShadowConfig,
    ShadowJob,
    ShadowResult,
    WorkerSpec,
    decode_job,
    encode_job,
)
from routeiq_gateway.shadow_worker import ShadowProcess

JOB = ShadowJob(
    decision_id="d-1",
    team="t1",
    messages=[{"role": "user", "content": "What is 2+2?\nLine two, ünïcode."}],
    query="What is 2+2?",
    served="small",
    answer="5",
    others=("big",),
    input_tokens=10,
    output_tokens=5,
)


def config(model_file: Path, nice: int = 19) -> ShadowConfig:
    # Port 1: nothing listens, so Redis is "down" at once.
    worker = WorkerSpec(config_path=str(model_file), redis_url="redis://127.0.0.1:1/0", nice=nice)
    return ShadowConfig(
        judge_group="big", fraction=1.0, oracle=Oracle("small", "big"), worker=worker
    )


def test_jobs_and_results_cross_the_pipe_as_json_lines() -> None:
    line = encode_job(JOB)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1  # the newline inside the prompt is escaped
    assert decode_job(line) == JOB
    result = ShadowResult("judged", {"decision_id": "d-1", "verdict_grades": {"big": "correct"}})
    assert ShadowResult.decode(result.encode()) == result


def test_the_worker_runs_jobs_at_low_priority_and_is_restarted_after_it_dies(
    model_file: Path,
) -> None:
    async def go() -> None:
        process = ShadowProcess(config(model_file))
        assert process.pid is None  # started by the first job, not before
        assert await process.run(JOB) == ShadowResult("budget_unavailable")
        first = process.pid
        assert first is not None
        assert os.getpriority(os.PRIO_PROCESS, first) == 19
        assert await process.run(JOB) == ShadowResult("budget_unavailable")  # the same worker
        assert process.pid == first
        os.kill(first, signal.SIGKILL)
        assert await process.run(JOB) == ShadowResult("error")  # its job failed, counted
        assert process.pid is None
        assert await process.run(JOB) == ShadowResult("budget_unavailable")  # a new worker
        second = process.pid
        assert second is not None
        assert second != first
        await process.aclose()
        assert process.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(second, 0)  # stopped and reaped

    asyncio.run(go())


def test_a_worker_spec_is_required(model_file: Path) -> None:
    with pytest.raises(ValueError, match="worker spec"):
        ShadowProcess(ShadowConfig(judge_group="big", fraction=1.0))
