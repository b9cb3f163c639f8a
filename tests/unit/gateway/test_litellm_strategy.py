"""RouteIQ plugged into a plain litellm.Router as its custom routing strategy."""

from __future__ import annotations

import random

import pytest
from litellm.router import Router
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
from routeiq.routing.strategies import BundleHolder
from routeiq_gateway.litellm_strategy import RouteIQRoutingStrategy


def deployments() -> list[dict]:
    return [
        {
            "model_name": "auto",
            "litellm_params": {"model": "openai/big", "api_key": "x", "mock_response": "from big"},
            "model_info": {
                "id": "big",
                "routeiq_quality_rank": 0.9,
                "input_cost_per_token": 1e-5,
                "output_cost_per_token": 3e-5,
            },
        },
        {
            "model_name": "auto",
            "litellm_params": {
                "model": "openai/small",
                "api_key": "x",
                "mock_response": "from small",
            },
            "model_info": {
                "id": "small",
                "routeiq_quality_rank": 0.5,
                "input_cost_per_token": 1e-7,
                "output_cost_per_token": 1e-7,
            },
        },
    ]


def engine() -> RoutingEngine:
    registry = StrategyRegistry(holder=BundleHolder(), rng=random.Random(0))
    registry.register(
        "policy",
        "policy",
        {"default": "small", "rules": [{"name": "code", "code": True, "model": "big"}]},
    )
    return RoutingEngine(registry, RoutingConfig(default="policy", epsilon=0.0))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_set_custom_routing_strategy_routes_with_routeiq() -> None:
    router = Router(model_list=deployments())
    seen = []
    router.set_custom_routing_strategy(
        RouteIQRoutingStrategy(
            router=router, engine=engine(), on_decision=lambda d, group: seen.append(d.selected)
        )
    )
    code = await router.acompletion(
        model="auto",
        messages=[{"role": "user", "content": "def f(x): return x  # fix this python"}],
    )
    chat = await router.acompletion(
        model="auto", messages=[{"role": "user", "content": "how are you today"}]
    )
    assert code.choices[0].message.content == "from big"
    assert chat.choices[0].message.content == "from small"
    assert seen == ["big", "small"]
