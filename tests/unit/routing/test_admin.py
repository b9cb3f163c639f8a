"""Strategy administration: a change is installed whole or not at all."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.errors import ConfigError
from routeiq.routing.admin import (
    StrategyChange,
    StrategySpec,
    apply_strategy_change,
    parse_strategy_change,
)
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
from routeiq.routing.strategies import BundleHolder


def engine() -> RoutingEngine:
    registry = StrategyRegistry(holder=BundleHolder(), rng=random.Random(1))
    for kind in ("random", "cheapest", "strongest"):
        registry.register(kind, kind)
    return RoutingEngine(registry, RoutingConfig(default="cheapest", epsilon=0.0))


THRESHOLD = {"name": "t", "kind": "threshold", "params": {"strong": "big", "weak": "small"}}


def test_a_valid_change_registers_and_reconfigures() -> None:
    e = engine()
    change = parse_strategy_change(
        {
            "register": [THRESHOLD],
            "ab": {"t": 1, "cheapest": "3"},
            "domain_overrides": {"legal": "strongest"},
            "epsilon": 0.1,
        }
    )
    assert change.register == (StrategySpec("t", "threshold", THRESHOLD["params"]),)
    config = apply_strategy_change(e, change)
    assert config is e.config
    assert e.config.describe() == {
        "default": "cheapest",
        "ab": {"t": 1.0, "cheapest": 3.0},
        "domain_overrides": {"legal": "strongest"},
        "epsilon": 0.1,
        "rollout": None,
        "kill_switch": False,
    }
    assert "t" in e.registry.names()
    assert e.registry.get("t").kind == "threshold"


def test_a_new_strategy_can_be_made_the_default_in_the_same_change() -> None:
    e = engine()
    apply_strategy_change(e, parse_strategy_change({"register": [THRESHOLD], "default": "t"}))
    assert e.config.default == "t"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"surprise": 1}, "unknown field"),
        ({"register": {"name": "t"}}, "must be a list"),
        ({"register": [{"name": "t"}]}, "register[0] needs string 'name' and 'kind'"),
        ({"register": [{"name": "t", "kind": "random", "params": []}]}, "params must be"),
        ({"ab": ["t"]}, "'ab' must map"),
        ({"ab": {"t": "lots"}}, "must be a number"),
        ({"domain_overrides": "legal"}, "'domain_overrides' must map"),
        ({"epsilon": None}, "must be a number"),
    ],
)
def test_malformed_changes_are_refused_with_the_reason(body: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_strategy_change(body)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        # An invalid strategy among valid ones: nothing is registered.
        {"register": [{"name": "ok", "kind": "random"}, {"name": "t", "kind": "threshold"}]},
        # A valid strategy but a configuration naming an unknown one.
        {"register": [{"name": "ok", "kind": "random"}], "default": "missing"},
        {"register": [{"name": "ok", "kind": "random"}], "epsilon": 2},
        {"register": [{"name": "ok", "kind": "random"}], "ab": {"ok": -1}},
        {"register": [{"name": "x" * 65, "kind": "random"}]},
        {"register": [{"name": "ok", "kind": "no-such-kind"}]},
    ],
)
def test_a_refused_change_leaves_the_engine_exactly_as_it_was(body: dict) -> None:
    e = engine()
    names, config = e.registry.names(), e.config
    with pytest.raises(ConfigError):
        apply_strategy_change(e, parse_strategy_change(body))
    assert e.registry.names() == names
    assert e.config is config


@settings(max_examples=60, deadline=None)
@given(
    default=st.sampled_from(["random", "cheapest", "strongest", "ok", "missing"]),
    epsilon=st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
    weights=st.dictionaries(
        st.sampled_from(["random", "cheapest", "ok", "missing"]),
        st.floats(min_value=-1, max_value=3, allow_nan=False),
        max_size=3,
    ),
)
def test_changes_are_all_or_nothing(default: str, epsilon: float, weights: dict) -> None:
    """Whatever the change, the engine ends either fully changed or exactly unchanged."""
    e = engine()
    before_names, before = e.registry.names(), e.config
    change = StrategyChange(
        register=(StrategySpec("ok", "random"),),
        config={"default": default, "epsilon": epsilon, "ab": weights},
    )
    try:
        apply_strategy_change(e, change)
    except ConfigError:
        assert e.registry.names() == before_names
        assert e.config is before
    else:
        assert "ok" in e.registry.names()
        assert e.config.default == default
        assert e.config.epsilon == epsilon
        assert dict(e.config.ab) == weights
