"""Shadow sampling end to end on the real parts: a gateway built by its own wiring, LiteLLM
calling the upstream process for the served, the shadow and the judge model, the daily budget
in the stack's Redis, and the verdict checked against the recorded GSM8K correctness; with the
jobs in the shadow worker process (the default) and on the gateway's loop."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from integration.upstream.helpers import API_KEY, UpstreamProcess
from routeiq.contracts.serde import LocalResolver
from routeiq.routing.datasets import GPT4, MIXTRAL, load_named
from routeiq.routing.strategies import BundleHolder
from routeiq_gateway.config import GatewaySettings, load_model_file
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.shadow_jobs import ShadowJobs
from routeiq_gateway.shadow_worker import ShadowProcess
from routeiq_gateway.wiring import build_app, build_engine, build_gateway
from starlette.testclient import TestClient

pytestmark = pytest.mark.integration

ADMIN_KEY = "integration-admin-key-0123"


class Collected:
    """A publisher that keeps what it is given (the Feedback records are checked here)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.state, self.spool_depth, self.last_error = "up", 0, None

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, key, value))


def model_file(path: Path, base_url: str) -> Path:
    def group(name: str, model: str, price: float) -> dict[str, Any]:
        params = {"model": f"openai/{model}", "api_base": base_url, "api_key": API_KEY}
        info = {"input_cost_per_token": price, "output_cost_per_token": price}
        return {"model_name": name, "litellm_params": params, "model_info": info}

    spec = {
        "model_list": [
            group("gpt-4", GPT4, 1e-5),
            group("mixtral", MIXTRAL, 1e-6),
            group("routeiq-judge", "routeiq-judge", 1e-6),
        ],
        "router_settings": {"num_retries": 0},
        "routeiq": {
            "candidates": {"gpt-4": {"quality_rank": 0.9}, "mixtral": {"quality_rank": 0.5}},
            "strategies": [
                {"name": "policy", "kind": "policy", "params": {"default": "mixtral", "rules": []}}
            ],
            "default_strategy": "policy",
            "epsilon": 0.0,
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("in_process", [True, False], ids=["worker-process", "inline"])
def test_a_shadowed_request_gets_the_recorded_verdict(
    start_upstream: Callable[..., UpstreamProcess], stack: Any, tmp_path: Path, in_process: bool
) -> None:
    upstream = start_upstream(api_key=API_KEY, datasets="gsm8k", tokenizer="approx")
    prefix = f"routeiq-test-{uuid.uuid4().hex[:10]}"
    settings = GatewaySettings(
        config_path=model_file(tmp_path / "models.yaml", upstream.base_url),
        admin_key=ADMIN_KEY,
        decision_key="integration-decision-key-01",
        user_salt="integration-salt",
        redis=stack.redis,
        keys_prefix=prefix,
        include_embedding=False,
        sync_enabled=False,
        control_enabled=False,
        shadow_fraction=1.0,
        shadow_daily_usd=0.5,
        shadow_oracle_cheap="mixtral",
        shadow_oracle_strong="gpt-4",
        shadow_process=in_process,
    )
    parsed = load_model_file(settings.config_path)
    metrics, publisher = GatewayMetrics(), Collected()
    gateway = build_gateway(
        settings,
        model_file=parsed,
        engine=build_engine(parsed, BundleHolder()),
        features=None,
        metrics=metrics,
        publisher=publisher,  # type: ignore[arg-type]
        resolver=LocalResolver(),
    )
    app = build_app(settings, gateway, model_file=parsed, metrics=metrics, sync=None)
    table = load_named("gsm8k")
    rows = [i for i in (5, 50, 500) if all(table.responses[i].values())]
    with TestClient(app) as client:
        for i in rows:
            body = {"model": "auto", "messages": [{"role": "user", "content": table.prompts[i]}]}
            r = client.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == table.responses[i][MIXTRAL]
        for _ in range(600):  # jobs run after the answers (a worker process starts first)
            if sum(t == settings.feedback_topic for t, _, _ in publisher.records) == len(rows):
                break
            time.sleep(0.05)
        runner = gateway.shadow.runner  # type: ignore[union-attr]
        if in_process:  # the jobs ran in the worker process, at the lowest CPU priority
            assert isinstance(runner, ShadowProcess)
            assert runner.pid is not None
            assert os.getpriority(os.PRIO_PROCESS, runner.pid) == 19
        else:
            assert isinstance(runner, ShadowJobs)
    if in_process:  # the app's shutdown stopped the worker
        assert runner.pid is None
    verdicts = [
        gateway.feedback_serde.decode(v)  # type: ignore[union-attr]
        for t, _, v in publisher.records
        if t == settings.feedback_topic
    ]
    assert len(verdicts) == len(rows)
    for i, verdict in zip(rows, verdicts, strict=True):
        graded = {"gpt-4": table.scores[i][0], "mixtral": table.scores[i][1]}
        expected = {m: "correct" if s == 1 else "wrong" for m, s in graded.items()}
        assert verdict["verdict_grades"] == expected
        assert verdict["score"] == graded["mixtral"]
        assert verdict["oracle_cell"] == f"{expected['mixtral']}/{expected['gpt-4']}"
        assert verdict["judge_model"] == "routeiq-judge"
    # Spend of the day in the stack's Redis: positive, within the budget.
    direct = redis.Redis.from_url(stack.redis.url)
    keys = direct.keys(f"{prefix}:shadow:*")
    assert len(keys) == 1
    assert 0 < float(direct.get(keys[0]) or 0) <= 0.5
    direct.delete(*keys)
