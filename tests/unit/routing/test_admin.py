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
    merge_change,
    parse_strategy_change,
    rebuild,
)
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput


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


def test_merge_change_keeps_what_the_change_does_not_set_and_replaces_names() -> None:
    v1 = merge_change({}, {"register": [THRESHOLD], "epsilon": 0.1, "kill_switch": True})
    other = {"name": "t", "kind": "strongest"}
    v2 = merge_change(v1, {"register": [other, {"name": "u", "kind": "random"}], "ab": {"u": 1}})
    assert v2 == {
        "epsilon": 0.1,
        "kill_switch": True,
        "ab": {"u": 1},
        "register": [other, {"name": "u", "kind": "random"}],
    }
    assert merge_change(v2, {}) == v2
    assert v1 == merge_change({}, {"register": [THRESHOLD], "epsilon": 0.1, "kill_switch": True})


def test_a_version_is_built_on_the_base_alone_whatever_was_served_before() -> None:
    learned = {"name": "l", "kind": "learned", "params": {"fallback": "t"}}
    # The learned strategy names its fallback, registered in the same version: built after it.
    config = {"register": [learned, THRESHOLD], "default": "l", "epsilon": 0.2}
    served = engine()
    served.adopt(rebuild(engine, config))
    assert served.config.default == "l"
    assert served.registry.names() == ["cheapest", "l", "random", "strongest", "t"]
    # Back to the base (an empty version): the registered strategies are gone with it.
    served.adopt(rebuild(engine, {}))
    assert served.config == engine().config
    assert served.registry.names() == ["cheapest", "random", "strongest"]


def test_a_version_that_cannot_be_built_changes_nothing() -> None:
    served = engine()
    before = (served.config, served.registry.names())
    with pytest.raises(ConfigError, match="unknown strategy"):
        served.adopt(rebuild(engine, {"default": "missing"}))
    assert (served.config, served.registry.names()) == before


def test_requests_read_a_configuration_and_its_strategies_together() -> None:
    """A request reads one (configuration, strategies) pair: adopting a version whose
    default is a new strategy never lets a request see one without the other."""
    served = engine()
    candidates = [
        ModelOption("small", input_price=1.0, output_price=1.0, quality_rank=0.1),
        ModelOption("big", input_price=5.0, output_price=5.0, quality_rank=0.9),
    ]
    new = rebuild(engine, {"register": [{"name": "n", "kind": "strongest"}], "default": "n"})
    config, strategies = served._active
    served.adopt(new)
    assert "n" not in strategies
    assert config.default == "cheapest"
    assert served.route(RouteInput("q"), candidates).strategy == "n"


def test_a_strategy_that_did_not_change_keeps_what_it_learned_live() -> None:
    def base() -> RoutingEngine:
        e = engine()
        e.registry.register("t", "threshold", THRESHOLD["params"])
        e.registry.register("l", "learned", {"fallback": "t"})
        return e

    served = base()
    threshold, learned = served.registry.get("t"), served.registry.get("l")
    cheapest = served.registry.get("cheapest")
    served.adopt(rebuild(base, {"kill_switch": True}))
    assert served.registry.get("t") is threshold
    assert served.registry.get("l") is learned
    # A strategy whose parameters change is the new one, and so is what falls back on it.
    change = {
        "register": [{**THRESHOLD, "params": {**THRESHOLD["params"], "target_strong_pct": 30}}]
    }
    served.adopt(rebuild(base, change))
    assert served.registry.get("t") is not threshold
    assert served.registry.get("l") is not learned
    assert served.registry.get("cheapest") is cheapest
    assert served._active[1]["t"] is served.registry.get("t")
