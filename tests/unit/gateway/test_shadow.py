"""Shadow sampling: drawn per team, queued off the request path (dropped and counted when
full), the other candidate asked, the blind judge's verdict published as Feedback, within a
daily budget that fails closed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from redis.exceptions import ConnectionError as RedisConnectionError
from routeiq.errors import ConfigError
from routeiq.routing.judge import parse_prompt, render_prompt, render_verdict
from routeiq.routing.oracle import Oracle
from routeiq_gateway import shadow
from routeiq_gateway.api.app import create_app
from routeiq_gateway.config import GatewaySettings, load_model_file
from routeiq_gateway.gateway import Gateway
from routeiq_gateway.routing import Plan
from routeiq_gateway.shadow import CpuGauge, ShadowSampler, shadow_config
from routeiq_gateway.shadow_jobs import JUDGE_LINE_TOKENS, ShadowConfig, ShadowJob, ShadowJobs
from routeiq_gateway.upstream import UpstreamOutcome
from starlette.testclient import TestClient

from .conftest import ADMIN_KEY, MODEL_FILE, CollectingPublisher, offline_gateway

QUESTION = "What is 2+2?"
BODY = {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]}
CONFIG = ShadowConfig(
    judge_group="judge", fraction=1.0, daily_usd=1.0, oracle=Oracle("small", "big")
)


class FakeRedis:
    """The few asyncio Redis calls the budget makes, in memory; ``down`` makes them fail."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.down = False
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True

    async def incrbyfloat(self, key: str, amount: float) -> float:
        if self.down:
            raise RedisConnectionError("redis down")
        self.values[key] = self.values.get(key, 0.0) + amount
        return self.values[key]

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.calls: list[tuple[str, float | None]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def incrbyfloat(self, key: str, amount: float) -> None:
        self.calls.append((key, amount))

    def expire(self, key: str, seconds: int) -> None:
        self.calls.append((key, None))

    async def execute(self) -> list[Any]:
        return [
            await self.redis.incrbyfloat(k, a) if a is not None else True for k, a in self.calls
        ]


class FakeUpstream:
    """Answers per group; the judge group reads the real judge prompt and calls an answer
    correct when it says 4. Records every call."""

    ANSWERS = {"big": "The answer is 4.", "small": "5"}

    def __init__(self, *, fail: set[str] | None = None, hang: set[str] | None = None) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail = fail or set()
        self.hang = hang or set()  # groups whose calls never answer (until cancelled)

    def cost(self, group: str, input_tokens: int, output_tokens: int) -> float | None:
        return 0.01

    async def complete(self, group: str, messages: list[dict[str, Any]], params: Any) -> Any:
        self.calls.append((group, messages))
        if group in self.fail:
            raise RuntimeError(f"{group} is down")
        if group in self.hang:
            await asyncio.Event().wait()
        if group == "judge":
            prompt = parse_prompt(messages[0]["content"])
            assert prompt is not None
            text = render_verdict(["correct" if "4" in t else "wrong" for t in prompt.texts])
        else:
            text = self.ANSWERS[group]
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        response = SimpleNamespace(
            choices=[SimpleNamespace(message=SimpleNamespace(content=text))],
            # What the HTTP layer sends the client.
            model_dump_json=lambda **_: json.dumps(body),
        )
        return response, UpstreamOutcome(served_group=group, upstream_ms=1.0, cost_usd=0.002)


def shadowing(
    model_file: Path, *, config: ShadowConfig = CONFIG, upstream: Any = None, redis: Any = None
) -> tuple[Gateway, CollectingPublisher, FakeUpstream]:
    publisher = CollectingPublisher()
    fake = upstream or FakeUpstream()
    gateway = dataclasses.replace(
        offline_gateway(model_file, publisher, upstream=fake),
        shadow_config=config,
        shadow_redis=redis if redis is not None else FakeRedis(),
    )
    return gateway, publisher, fake


def with_judge(folder: Path, params: dict[str, Any], info: dict[str, float] | None = None) -> Path:
    """The unit model file plus a ``judge`` group (``params`` added to its litellm_params)."""
    spec = yaml.safe_load(yaml.safe_dump(MODEL_FILE))
    litellm_params = {"model": "openai/judge", "api_key": "x", **params}
    judge: dict[str, Any] = {"model_name": "judge", "litellm_params": litellm_params}
    spec["model_list"].append({**judge, "model_info": info} if info else judge)
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def plan_for(gateway: Gateway, team: str | None = None) -> Plan:
    headers = {"x-routeiq-team": team} if team else {}
    return asyncio.run(gateway.plan(BODY, headers))


def served(group: str = "small") -> UpstreamOutcome:
    return UpstreamOutcome(served_group=group, upstream_ms=1.0, input_tokens=10, output_tokens=5)


def offer_and_drain(sampler: ShadowSampler, *offers: tuple[Plan, str, UpstreamOutcome]) -> None:
    async def go() -> None:
        for offer in offers:
            sampler.offer(*offer)
        await sampler.queue.join()
        await sampler.aclose()

    asyncio.run(go())


def fate(gateway: Gateway, name: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "routeiq_gateway_shadow_total", {"fate": name}
    )
    return value or 0.0


def feedback(gateway: Gateway, publisher: CollectingPublisher) -> list[dict[str, Any]]:
    return [gateway.feedback_serde.decode(v) for t, _, v in publisher.records if t == "feedback"]


def test_a_sampled_request_is_shadowed_judged_blind_and_published(model_file: Path) -> None:
    gateway, publisher, upstream = shadowing(model_file)
    plan = plan_for(gateway, team="t1")
    assert gateway.shadow is not None
    offer_and_drain(gateway.shadow, (plan, FakeUpstream.ANSWERS["small"], served()))
    assert [g for g, _ in upstream.calls] == ["big", "judge"]
    assert upstream.calls[0][1] == BODY["messages"]  # the same question
    prompt = upstream.calls[1][1][0]["content"]
    assert "small" not in prompt
    assert "big" not in prompt
    [record] = feedback(gateway, publisher)
    assert record["decision_id"] == plan.decision_id
    assert record["verdict_grades"] == {"small": "wrong", "big": "correct"}
    assert record["score"] == 0.0  # the served (small) answer was wrong
    assert record["candidate"] is None
    assert record["source"] == "judge"
    assert record["judge_model"] == "judge"
    assert sorted(record["verdict_order"]) == ["big", "small"]
    assert (record["oracle_cell"], record["policy"]) == ("wrong/correct", "Complex_Query")
    # The day's shadow spend is what the shadow and judge calls cost, not the estimate.
    redis = gateway.shadow_redis
    [(key, spent)] = redis.values.items()
    assert key.startswith("routeiq:shadow:t1:d:")
    assert spent == pytest.approx(0.004)
    assert fate(gateway, "judged") == 1


def test_only_the_drawn_share_of_each_team_is_shadowed(model_file: Path) -> None:
    config = dataclasses.replace(CONFIG, fraction=0.0, team_fractions={"t1": 1.0})
    gateway, publisher, _upstream = shadowing(model_file, config=config)
    assert gateway.shadow is not None
    offer_and_drain(
        gateway.shadow,
        (plan_for(gateway), "5", served()),
        (plan_for(gateway, "t2"), "5", served()),
        (plan_for(gateway, "t1"), "5", served()),
    )
    assert len(feedback(gateway, publisher)) == 1
    assert fate(gateway, "queued") == 1
    # Off by default: no sampler at all.
    off, _, _ = shadowing(model_file, config=dataclasses.replace(CONFIG, fraction=0.0))
    assert off.shadow is None


def test_a_full_queue_drops_and_counts_without_waiting(model_file: Path) -> None:
    gateway, publisher, _ = shadowing(model_file, config=dataclasses.replace(CONFIG, queue_size=1))
    plan = plan_for(gateway)
    assert gateway.shadow is not None
    offer_and_drain(gateway.shadow, *[(plan, "5", served())] * 3)
    assert (fate(gateway, "queued"), fate(gateway, "dropped_full")) == (1, 2)
    assert len(feedback(gateway, publisher)) == 1


def test_the_daily_budget_is_respected(model_file: Path) -> None:
    # The estimate (0.01 per shadow model, 0.01 for the judge) passes a 0.015 budget: nothing
    # is asked.
    config = dataclasses.replace(CONFIG, daily_usd=0.015)
    gateway, publisher, upstream = shadowing(model_file, config=config)
    assert gateway.shadow is not None
    offer_and_drain(gateway.shadow, (plan_for(gateway), "5", served()))
    assert upstream.calls == []
    assert feedback(gateway, publisher) == []
    assert fate(gateway, "over_budget") == 1
    assert set(gateway.shadow_redis.values.values()) == {0.0}  # the reservation taken back
    # Each job reserves 0.02 and settles at 0.004: the fourth reservation passes 0.029.
    config = dataclasses.replace(CONFIG, daily_usd=0.029)
    gateway, _publisher, upstream = shadowing(model_file, config=config)
    assert gateway.shadow is not None
    offer_and_drain(gateway.shadow, *[(plan_for(gateway), "5", served())] * 4)
    assert (fate(gateway, "judged"), fate(gateway, "over_budget")) == (3, 1)


@pytest.mark.parametrize("redis_down", [True, False])
def test_without_redis_nothing_is_shadowed(model_file: Path, redis_down: bool) -> None:
    redis = FakeRedis()
    redis.down = True
    gateway, publisher, upstream = shadowing(model_file, redis=redis)
    if not redis_down:  # no Redis configured at all
        gateway = dataclasses.replace(gateway, shadow_redis=None)
    assert gateway.shadow is not None
    offer_and_drain(gateway.shadow, (plan_for(gateway), "5", served()))
    assert upstream.calls == []
    assert fate(gateway, "budget_unavailable") == 1
    assert feedback(gateway, publisher) == []


def test_failures_are_counted_never_raised(model_file: Path) -> None:
    gateway, publisher, _upstream = shadowing(model_file, upstream=FakeUpstream(fail={"big"}))
    assert gateway.shadow is not None
    broken = dataclasses.replace(plan_for(gateway), request=None)
    offer_and_drain(gateway.shadow, (plan_for(gateway), "5", served()), (broken, "5", served()))
    assert (fate(gateway, "shadow_failed"), fate(gateway, "error")) == (1, 1)
    assert feedback(gateway, publisher) == []


def test_shadow_settings_are_checked_against_the_model_file(model_file: Path) -> None:
    parsed = load_model_file(model_file)
    env = {
        "config_path": str(model_file),
        "admin_key": ADMIN_KEY,
        "decision_key": "d" * 32,
        "user_salt": "salt",
    }
    assert shadow_config(GatewaySettings(**env), parsed) is None  # off by default
    with pytest.raises(ConfigError, match=r"lacks: \['routeiq-judge'\]"):
        shadow_config(GatewaySettings(**env, shadow_fraction=0.1), parsed)
    config = shadow_config(
        GatewaySettings(
            **env,
            shadow_team_fractions={"t1": 0.5},
            shadow_judge_group="big",
            shadow_oracle_cheap="small",
            shadow_oracle_strong="big",
        ),
        parsed,
    )
    assert config is not None
    assert (config.fraction_for("t1"), config.fraction_for("t2")) == (0.5, 0.0)
    with pytest.raises(ConfigError, match="both shadow_oracle_cheap"):
        shadow_config(GatewaySettings(**env, shadow_oracle_cheap="small"), parsed)


def test_through_http_the_client_is_answered_and_the_verdict_follows(tmp_path: Path) -> None:
    """LiteLLM's mock deployments end to end: the judge group always prefers Answer A."""
    path = with_judge(tmp_path, {"mock_response": "A: correct\nB: wrong"})
    publisher = CollectingPublisher()
    gateway = dataclasses.replace(
        offline_gateway(path, publisher), shadow_config=CONFIG, shadow_redis=FakeRedis()
    )
    with TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)) as client:
        r = client.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200, r.text
        s = client.post("/v1/chat/completions", json={**BODY, "stream": True})
        assert s.status_code == 200
        for _ in range(200):  # the worker runs on the app's loop: wait for both verdicts
            if len(feedback(gateway, publisher)) == 2:
                break
            time.sleep(0.05)
    records = feedback(gateway, publisher)
    assert len(records) == 2
    for record in records:
        first = record["verdict_order"][0]
        assert record["verdict_grades"][first] == "correct"
        assert record["score"] == (1.0 if first == "small" else 0.0)


def test_shutdown_drains_the_queue_before_the_loop_closes(model_file: Path) -> None:
    """Leaving the app's lifespan (uvicorn after SIGTERM) finishes queued shadow jobs."""
    gateway, publisher, upstream = shadowing(model_file)
    with TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)) as client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=BODY).status_code == 200
    # No waiting here: the verdicts were published before the lifespan ended.
    assert len(feedback(gateway, publisher)) == 3
    assert fate(gateway, "judged") == 3
    assert [g for g, _ in upstream.calls].count("judge") == 3
    assert gateway.shadow_redis.closed
    assert gateway.shadow is not None
    # Closed: a late answer is not queued, and no worker is started again.
    gateway.shadow.offer(plan_for(gateway), "5", served())
    assert (gateway.shadow.queue.qsize(), fate(gateway, "queued")) == (0, 3)


def test_shutdown_cancels_a_stuck_job_keeping_its_reservation(model_file: Path) -> None:
    config = dataclasses.replace(CONFIG, drain_s=0.05)
    gateway, publisher, upstream = shadowing(
        model_file, config=config, upstream=FakeUpstream(hang={"big"})
    )
    with TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)) as client:
        for _ in range(2):
            assert client.post("/v1/chat/completions", json=BODY).status_code == 200
    assert gateway.shadow is not None
    assert gateway.shadow.queue.empty()  # the second job was dropped, never started
    assert sorted(g for g, _ in upstream.calls) == ["big", "small", "small"]  # one shadow call
    assert feedback(gateway, publisher) == []
    # The cancelled call may be billed: its job's estimate (0.02) stays reserved.
    [(_key, spent)] = gateway.shadow_redis.values.items()
    assert spent == pytest.approx(0.02)


def test_the_estimate_prices_the_shadow_answers_and_the_judge(tmp_path: Path) -> None:
    """With the model file's real prices: the judge reads the question and both answers."""
    path = with_judge(tmp_path, {}, {"input_cost_per_token": 2e-6, "output_cost_per_token": 4e-6})
    gateway = dataclasses.replace(
        offline_gateway(path, CollectingPublisher()), shadow_config=CONFIG, shadow_redis=FakeRedis()
    )
    assert gateway.shadow is not None
    job = ShadowJob("d", None, BODY["messages"], QUESTION, "small", "5", ("big",), 100, 300)
    instructions = len(render_prompt(".", ["", ""])) // 4
    big = 100 * 1e-5 + 300 * 3e-5  # big's prices in MODEL_FILE
    judged = (instructions + 100 + 2 * 300) * 2e-6 + 2 * JUDGE_LINE_TOKENS * 4e-6
    assert isinstance(gateway.shadow.runner, ShadowJobs)  # inline: no worker spec in CONFIG
    assert gateway.shadow.runner.estimate(job) == pytest.approx(big + judged)


def test_the_cpu_gauge_reads_cores_over_its_window() -> None:
    now, used = [0.0], [0.0]
    gauge = CpuGauge(1.0, cpu=lambda: used[0], clock=lambda: now[0])
    assert gauge.cores() is None  # no history yet
    now[0], used[0] = 0.6, 0.3
    assert gauge.cores() == pytest.approx(0.5)
    now[0], used[0] = 2.0, 1.7  # a full core since: the first sample left the window
    assert gauge.cores() == pytest.approx(1.0)
    now[0], used[0] = 3.0, 2.6
    assert gauge.cores() == pytest.approx(0.9)  # measured from 2.0: 0.6 is a window old
    now[0], used[0] = 3.5, 2.7
    assert gauge.cores() == pytest.approx((2.7 - 1.7) / (3.5 - 2.0))
    now[0], used[0] = 60.0, 3.0  # after an idle minute: no recent history, so no reading
    assert gauge.cores() is None


class ScriptedGauge:
    """Reads the given core counts in turn, then ``after`` for ever."""

    def __init__(self, *reads: float | None, after: float = 0.0) -> None:
        self.reads, self.after, self.count = list(reads), after, 0

    def cores(self) -> float | None:
        self.count += 1
        return self.reads.pop(0) if self.reads else self.after


def test_a_busy_gateway_holds_jobs_until_it_has_cpu_to_spare(model_file: Path) -> None:
    """While the gateway uses ``cpu_limit`` cores or more, no job starts (none of its calls
    made); they wait on the queue and run once it is under the limit."""
    gateway, publisher, upstream = shadowing(model_file)
    assert gateway.shadow is not None
    busy = ScriptedGauge(None, 0.9, 0.7, after=0.2)  # no history, busy, at the limit, then idle
    sampler = ShadowSampler(gateway.shadow.config, gateway, gauge=busy)  # type: ignore[arg-type]
    calls_while_busy: list[int] = []
    plan = plan_for(gateway)

    async def go() -> None:
        sampler.offer(plan, "5", served())
        for _ in range(2):  # two of the pauses: nothing asked yet
            await asyncio.sleep(shadow.PAUSE_S)
            calls_while_busy.append(len(upstream.calls))
        await sampler.queue.join()
        await sampler.aclose()

    asyncio.run(go())
    assert calls_while_busy == [0, 0]
    assert busy.count == 4  # three reads said wait, the fourth let the job start
    assert [g for g, _ in upstream.calls] == ["big", "judge"]
    assert len(feedback(gateway, publisher)) == 1
