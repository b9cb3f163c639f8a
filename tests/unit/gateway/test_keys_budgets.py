"""Keys, budgets and LiteLLM config acceptance, without Redis: the master key alone, a Redis
that refuses connections (keys fail closed, budgets fail open), the budget levels, the cost
rule's downgrade and the model file's LiteLLM sections. Virtual keys and spend against the
real Redis: tests/integration/gateway/test_keys_budgets.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from routeiq.errors import ConfigError
from routeiq.routing.costpolicy import downgrade
from routeiq.routing.strategies import ModelOption
from routeiq_gateway.api.app import create_app
from routeiq_gateway.budgets import Budgets, BudgetState
from routeiq_gateway.config import BudgetSpec, load_model_file
from routeiq_gateway.keys import Access, DecisionOwners, KeyStore, hash_key
from starlette.testclient import TestClient

from .conftest import ADMIN_KEY, MODEL_FILE, CollectingPublisher, offline_gateway

MASTER = "sk-master-0123456789"
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def _app(model_file: Path, **kwargs: Any) -> tuple[TestClient, CollectingPublisher]:
    publisher = CollectingPublisher()
    gateway = offline_gateway(model_file, publisher)
    app = create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096, **kwargs)
    return TestClient(app), publisher


def _refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def test_the_master_key_is_required_where_configured(model_file: Path) -> None:
    client, publisher = _app(model_file, access=Access(master_key=MASTER))
    with client:
        missing = _refused(client.post("/v1/chat/completions", json=CHAT), 401, "invalid_api_key")
        assert missing["type"] == "invalid_request_error"
        wrong = client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-wrong-key-99"}
        )
        assert "sk-wro***y-99" in _refused(wrong, 401, "invalid_api_key")["message"]
        assert publisher.records == []  # refused before routing: no decision was made
        ok = client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {MASTER}"}
        )
        assert ok.status_code == 200, ok.text
        decision_id = ok.headers["x-routeiq-decision-id"]
        score = {"decision_id": decision_id, "score": 1.0, "source": "user"}
        _refused(client.post("/v1/feedback", json=score), 401, "invalid_api_key")
        fine = client.post(
            "/v1/feedback", json=score, headers={"authorization": f"Bearer {MASTER}"}
        )
        assert fine.status_code == 202, fine.text


def _down() -> Redis:
    # Nothing listens on port 1: every call fails at once with a connection error.
    return Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)


def test_keys_fail_closed_and_budgets_fail_open_when_redis_is_down(model_file: Path) -> None:
    publisher = CollectingPublisher()
    gateway = offline_gateway(model_file, publisher)
    redis_state = gateway.metrics.dependencies["redis"]
    store = KeyStore(redis=_down(), dependency=redis_state)
    budgets = Budgets(
        redis=_down(), dependency=redis_state, specs={"*": BudgetSpec(daily_usd=0.000001)}
    )
    app = create_app(
        gateway,
        admin_key=ADMIN_KEY,
        max_body_bytes=4096,
        access=Access(master_key=MASTER, store=store),
        budgets=budgets,
    )
    with TestClient(app) as client:
        unknown = client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-riq-unknown"}
        )
        _refused(unknown, 503, "key_store_unavailable")
        assert not redis_state.up
        # The master key needs no Redis; the budget ledger is down, so the team is served.
        served = client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {MASTER}", "x-routeiq-team": "t1"},
        )
        assert served.status_code == 200, served.text
        ready = client.get("/health/ready").json()
        assert ready["dependencies"]["redis"]["up"] is False
        _refused(
            client.post(
                "/admin/keys", json={"team": "t1"}, headers={"authorization": f"Bearer {ADMIN_KEY}"}
            ),
            503,
            "key_store_unavailable",
        )


@pytest.mark.anyio
async def test_a_verified_key_survives_a_redis_blip() -> None:
    from routeiq.dependencies import Dependency

    now = [100.0]
    store = KeyStore(
        redis=_down(),
        dependency=Dependency(name="redis", log=logging.getLogger("t")),
        cache_s=30.0,
        stale_s=60.0,
        clock=lambda: now[0],
    )
    key = "sk-riq-known"
    caller = _seed(store, key, team="t1")
    now[0] += 50.0  # past the fresh window: Redis is asked, fails, the stale entry serves
    assert await store.verify(key) == caller
    now[0] += 60.0  # past stale too: refused until Redis answers
    with pytest.raises(Exception, match="does not answer"):
        await store.verify(key)


def _seed(store: KeyStore, key: str, *, team: str) -> Any:
    from routeiq_gateway.keys import Caller

    caller = Caller(hash_key(key), team=team)
    store._verified[caller.key_hash] = (store.clock(), caller)
    return caller


@pytest.mark.anyio
async def test_feedback_owner_check_fails_closed_when_redis_is_down() -> None:
    from routeiq.dependencies import Dependency
    from routeiq_gateway.errors import KeysUnavailable
    from routeiq_gateway.keys import Caller

    owners = DecisionOwners(
        redis=_down(), dependency=Dependency(name="redis", log=logging.getLogger("t"))
    )
    await owners.remember("d1", Caller("h" * 64, team="t"))  # not raised: the request is served
    with pytest.raises(KeysUnavailable):
        await owners.check("d1", Caller("h" * 64, team="t"))
    await owners.check("d1", Caller("m" * 64, master=True))  # the master key scores any


def test_budget_levels() -> None:
    spec = BudgetSpec(daily_usd=10.0, monthly_usd=100.0, soft_fraction=0.5)
    assert BudgetState("t", 4.99, 10.0, spec).level == "ok"
    assert BudgetState("t", 5.0, 10.0, spec).level == "soft"
    assert BudgetState("t", 1.0, 50.0, spec).level == "soft"
    assert BudgetState("t", 10.0, 10.0, spec).level == "hard"
    assert BudgetState("t", 0.0, 100.0, spec).level == "hard"
    assert BudgetState("t", 1e9, 1e9, None).level == "ok"
    with pytest.raises(ValueError, match="daily_usd, monthly_usd or both"):
        BudgetSpec(soft_fraction=0.5)


_OPTIONS = st.lists(
    st.builds(
        ModelOption,
        name=st.text("abcdef", min_size=1, max_size=4),
        input_price=st.floats(0, 100),
        output_price=st.floats(0, 100),
        quality_rank=st.floats(0, 1),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda o: o.name,
)


@given(_OPTIONS, st.integers(1, 10_000), st.floats(0, 1))
def test_downgrade_is_the_strongest_within_budget_else_the_cheapest(
    options: list[ModelOption], tokens: int, budget: float
) -> None:
    pick = downgrade(options, tokens, budget)
    within = [o for o in options if o.est_cost(tokens) <= budget]
    if within:
        assert pick in within
        assert all(pick.quality_rank >= o.quality_rank for o in within)
    else:
        assert all(pick.est_cost(tokens) <= o.est_cost(tokens) for o in options)


def _write(tmp_path: Path, **sections: Any) -> Path:
    path = tmp_path / "litellm.yaml"
    path.write_text(yaml.safe_dump({**MODEL_FILE, **sections}))
    return path


def test_a_litellm_config_is_accepted_as_it_is_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RIQ_TEST_MASTER", raising=False)
    path = _write(
        tmp_path,
        router_settings={"num_retries": 0, "routing_strategy": "simple-shuffle", "bogus": 1},
        litellm_settings={"drop_params": True, "success_callback": ["langfuse"]},
        general_settings={"master_key": "os.environ/RIQ_TEST_MASTER", "database_url": "x"},
        environment_variables={"RIQ_TEST_MASTER": "sk-from-file", "RIQ_FLAG": True},
        guardrails=[{"guardrail_name": "g"}],
    )
    with caplog.at_level(logging.WARNING, logger="routeiq_gateway"):
        parsed = load_model_file(path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert parsed.unsupported() == [
        "guardrails",
        "router_settings.bogus",
        "general_settings.database_url",
        "litellm_settings.success_callback",
    ]
    for name in parsed.unsupported():
        assert name in warnings[0]
    assert "bogus" not in parsed.router_settings  # litellm.Router would refuse it
    assert parsed.master_key == "sk-from-file"
    monkeypatch.setenv("RIQ_TEST_MASTER", "sk-from-process")
    assert parsed.master_key == "sk-from-process"  # the deployment overrides the file
    monkeypatch.delenv("RIQ_FLAG", raising=False)
    parsed.apply_environment()
    import os

    assert os.environ["RIQ_FLAG"] == "true"
    assert os.environ["RIQ_TEST_MASTER"] == "sk-from-process"
    monkeypatch.delenv("RIQ_FLAG")


@pytest.mark.parametrize(
    ("sections", "reason"),
    [
        ({"model_lsit": []}, "unknown section"),
        ({"environment_variables": {"NOT-A-NAME": "x"}}, "not environment variable names"),
        ({"general_settings": {"master_key": ""}}, "master_key must be a non-empty string"),
        ({"general_settings": {"master_key": "os.environ/RIQ_UNSET_X"}}, "is not set"),
        ({"environment_variables": {"A": {"nested": 1}}}, "environment_variables"),
    ],
)
def test_invalid_values_are_still_refused_with_the_reason(
    tmp_path: Path, sections: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_model_file(_write(tmp_path, **sections))


def test_budgets_in_the_model_file(tmp_path: Path) -> None:
    routeiq = {
        **MODEL_FILE["routeiq"],
        "budgets": {"*": {"daily_usd": 5}, "ml": {"monthly_usd": 0}},
    }
    with pytest.raises(ConfigError, match=r"budgets\.ml\.monthly_usd"):
        load_model_file(_write(tmp_path, routeiq=routeiq))
