"""Keys and budgets against the real Redis and Kafka, on a gateway wired in-process by the
composition root's own builders (``build_gateway``, ``build_publisher``, ``build_app``):
virtual keys created, used and revoked through the admin API (by the CLI's client), the
key's team winning over the request's, feedback only from the key that made the decision,
the spend in Redis equal to the sum of the costs on the decisions topic, and a team
downgraded past its soft limit and refused at its hard limit.

Each test uses its own Redis key prefix and its own decisions topic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from routeiq.contracts.catalog import FEEDBACK, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import FEEDBACK_EVENTS, ROUTER_DECISIONS
from routeiq.kafka import make_consumer
from routeiq.routing.strategies import BundleHolder
from routeiq_cli.keys import admin_call, render_keys
from routeiq_cli.report import render_budgets
from routeiq_gateway.config import GatewaySettings, load_model_file
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.wiring import build_app, build_engine, build_gateway, build_publisher
from starlette.testclient import TestClient
from support.kafka import read_messages, register_values

ADMIN_KEY = "integration-admin-key-0123"
PRICED = {"input_cost_per_token": 1e-5, "output_cost_per_token": 3e-5}
CHEAP = {"input_cost_per_token": 6e-7, "output_cost_per_token": 6e-7}
CODE = "Write a python function that adds two numbers:\n```python\ndef add(a, b):\n```"


def _deployment(name: str, prices: dict[str, float], answer: str) -> dict[str, Any]:
    # The provider key through LiteLLM's os.environ/ reference, set by the file itself.
    params = {"model": f"openai/{name}", "api_key": "os.environ/RIQ_IT_UPSTREAM_KEY"}
    return {
        "model_name": name,
        "litellm_params": {**params, "mock_response": answer},
        "model_info": prices,
    }


def _model_file(path: Path, budgets: dict[str, Any]) -> Path:
    code_rule = {"name": "code", "code": True, "model": "big"}
    routeiq = {
        "candidates": {"big": {"quality_rank": 0.9}, "small": {"quality_rank": 0.5}},
        "strategies": [
            {
                "name": "policy",
                "kind": "policy",
                "params": {"default": "small", "rules": [code_rule]},
            }
        ],
        "default_strategy": "policy",
        "epsilon": 0.0,
        "budgets": budgets,
    }
    litellm = {
        "model_list": [
            _deployment("big", PRICED, "The answer is 4, as computed."),
            _deployment("small", CHEAP, "4"),
        ],
        "router_settings": {"num_retries": 0},
        "environment_variables": {"RIQ_IT_UPSTREAM_KEY": "offline"},
        "general_settings": {"master_key": "sk-it-master-0123456789"},
    }
    path.write_text(yaml.safe_dump({**litellm, "routeiq": routeiq}))
    return path


@dataclass
class Wired:
    client: TestClient
    redis: redis.Redis
    prefix: str
    decisions: tuple[str, AvroSerde]  # the private topic and its serde

    def spend(self, team: str) -> tuple[float, float]:
        now = datetime.now(tz=UTC)
        base = f"{self.prefix}:spend:{team}"
        day, month = self.redis.mget([f"{base}:d:{now:%Y%m%d}", f"{base}:m:{now:%Y%m}"])
        return float(day or 0.0), float(month or 0.0)

    def chat(self, key: str, content: str = "What is 2+2?", **extra: Any) -> Any:
        body = {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}
        headers = {"authorization": f"Bearer {key}", "x-routeiq-team": "someone-else"}
        return self.client.post("/v1/chat/completions", json=body, headers=headers)


@pytest.fixture
def wired_factory(stack, registry_client, topic_factory, tmp_path: Path) -> Iterator[Any]:
    prefix = f"routeiq-test-{uuid.uuid4().hex[:10]}"
    decisions = topic_factory(ROUTER_DECISIONS)
    feedback = topic_factory(FEEDBACK_EVENTS)
    register_values(registry_client, {decisions.name: ROUTER_DECISION, feedback.name: FEEDBACK})
    resolver = RegistryResolver(registry_client)
    direct = redis.Redis.from_url(stack.redis.url)
    closers: list[Any] = []

    def make(budgets: dict[str, Any]) -> Wired:
        settings = GatewaySettings(
            config_path=_model_file(tmp_path / f"models-{len(closers)}.yaml", budgets),
            admin_key=ADMIN_KEY,
            decision_key="integration-decision-key-01",
            user_salt="integration-salt",
            kafka=stack.kafka,
            registry=stack.registry,
            redis=stack.redis,
            decisions_topic=decisions.name,
            feedback_topic=feedback.name,
            spool_dir=tmp_path / f"spool-{len(closers)}",
            include_embedding=False,
            sync_enabled=False,
            virtual_keys=True,
            keys_prefix=prefix,
        )
        model_file = load_model_file(settings.config_path)
        engine = build_engine(model_file, BundleHolder())
        metrics = GatewayMetrics()
        publisher = build_publisher(settings, metrics)
        publisher.start()
        gateway = build_gateway(
            settings,
            model_file=model_file,
            engine=engine,
            features=None,
            metrics=metrics,
            publisher=publisher,
            resolver=resolver,
        )
        app = build_app(settings, gateway, model_file=model_file, metrics=metrics, sync=None)
        # The admin key on every call, as the CLI's client sends it; chat and feedback calls
        # send their own key instead.
        client = TestClient(app, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        client.__enter__()
        closers.append((client, publisher))
        serde = AvroSerde.for_topic(ROUTER_DECISION, decisions.name, resolver=resolver)
        return Wired(client, direct, prefix, (decisions.name, serde))

    yield make
    for client, publisher in closers:
        client.__exit__(None, None, None)
        publisher.close()
    for key in direct.scan_iter(match=f"{prefix}:*"):
        direct.delete(key)
    direct.close()


def _events(wired: Wired, count: int, stack: Any) -> list[dict[str, Any]]:
    consumer = make_consumer(
        stack.kafka,
        group_id=f"test-keys-{uuid.uuid4().hex[:8]}",
        client_id="test-keys-budgets",
        overrides={"auto.offset.reset": "earliest", "enable.partition.eof": True},
    )
    topic, serde = wired.decisions
    consumer.subscribe([topic])
    messages = read_messages(consumer, count, timeout=60.0)
    return [serde.decode(m.value()) for m in messages]


def test_virtual_keys_and_spend_against_the_decisions_topic(wired_factory, stack) -> None:
    w = wired_factory({})
    made = admin_call(w.client, "POST", "/admin/keys", body={"team": "alpha", "user": "ann"})
    key_a = made["key"]
    key_b = admin_call(w.client, "POST", "/admin/keys", body={"team": "beta"})["key"]
    listed = admin_call(w.client, "GET", "/admin/keys", params={"team": "alpha"})["keys"]
    assert [r["key_id"] for r in listed] == [made["key_id"]]
    assert key_a not in str(listed)
    assert key_a not in render_keys(listed)
    # Stored hashed: the key itself is nowhere in Redis.
    for name in w.redis.scan_iter(match=f"{w.prefix}:*"):
        if w.redis.type(name) == b"string":
            assert key_a.encode() not in (w.redis.get(name) or b"")
        assert key_a.encode() not in name

    unknown = w.chat("sk-riq-not-a-key")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "invalid_api_key"

    served = []
    for i in range(6):
        r = w.chat(key_a, CODE if i % 2 else "What is 2+2?", stream=i % 3 == 0)
        assert r.status_code == 200, r.text
        served.append(r.headers["x-routeiq-decision-id"])
    assert {w.chat(key_b).status_code for _ in range(2)} == {200}

    # Feedback: the key that made the decision may score it, another team's key may not.
    score = {"decision_id": served[0], "score": 1.0, "source": "user"}
    other = w.client.post("/v1/feedback", json=score, headers={"authorization": f"Bearer {key_b}"})
    assert other.status_code == 404, other.text
    own = w.client.post("/v1/feedback", json=score, headers={"authorization": f"Bearer {key_a}"})
    assert own.status_code == 202, own.text

    events = _events(w, 8, stack)
    assert len(events) == 8
    by_team: dict[str, float] = {}
    for e in events:
        team = e["input"]["team_id"]
        by_team[team] = by_team.get(team, 0.0) + (e["outcome"]["cost_usd"] or 0.0)
    assert set(by_team) == {"alpha", "beta"}  # the key's team, never the header's
    alpha_events = [e for e in events if e["input"]["team_id"] == "alpha"]
    assert {e["event_id"] for e in alpha_events} == set(served)
    # The key's user ("ann", hashed) for every request the key made; beta's key has none.
    assert len({e["input"]["user_id"] for e in alpha_events}) == 1
    assert alpha_events[0]["input"]["user_id"] is not None
    assert {e["input"]["user_id"] for e in events if e["input"]["team_id"] == "beta"} == {None}
    assert by_team["alpha"] > 0
    for team, total in by_team.items():
        day, month = w.spend(team)
        assert day == pytest.approx(total, rel=1e-9)
        assert month == pytest.approx(total, rel=1e-9)

    # No limits in this file: spend is counted and shown all the same.
    report = admin_call(w.client, "GET", "/admin/budgets")
    assert report["enabled"] is True
    shown = {t["team"]: t for t in report["teams"]}
    assert shown["alpha"]["day_usd"] == pytest.approx(by_team["alpha"], rel=1e-9)
    assert shown["alpha"]["daily_usd"] is None
    assert shown["alpha"]["level"] == "ok"
    assert "alpha" in "\n".join(render_budgets(report))

    revoked = admin_call(w.client, "DELETE", f"/admin/keys/{made['key_id']}")
    assert revoked["revoked"]["team"] == "alpha"
    after = w.chat(key_a)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_api_key"


def test_a_team_is_downgraded_past_its_soft_limit_then_refused_at_its_hard_limit(
    wired_factory,
) -> None:
    w = wired_factory({"gamma": {"daily_usd": 1.0, "soft_fraction": 0.5}})
    key = admin_call(w.client, "POST", "/admin/keys", body={"team": "gamma"})["key"]
    first = w.chat(key, CODE)
    assert first.headers["x-routeiq-model"] == "big"  # the policy's code rule
    day, _ = w.spend("gamma")
    assert day > 0

    # Past half the daily budget: the same request is served by the cheaper model.
    w.redis.incrbyfloat(f"{w.prefix}:spend:gamma:d:{datetime.now(tz=UTC):%Y%m%d}", 0.6)
    soft = w.chat(key, CODE)
    assert soft.status_code == 200, soft.text
    assert soft.headers["x-routeiq-model"] == "small"
    states = admin_call(w.client, "GET", "/admin/budgets")["teams"]
    (gamma,) = [t for t in states if t["team"] == "gamma"]
    assert gamma["level"] == "soft"
    assert "downgraded" in "\n".join(render_budgets({"enabled": True, "teams": states}))

    w.redis.incrbyfloat(f"{w.prefix}:spend:gamma:d:{datetime.now(tz=UTC):%Y%m%d}", 0.5)
    hard = w.chat(key, CODE)
    assert hard.status_code == 429
    assert hard.json()["error"]["type"] == "insufficient_quota"
    assert hard.json()["error"]["code"] == "insufficient_quota"
