"""RouteLLM's quantity from a router's expected qualities, and its threshold rule's checks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.errors import ConfigError
from routeiq.routing.strategies import (
    BundleHolder,
    ModelOption,
    RouteInput,
    RouteLLMThreshold,
    strategy_class,
    strong_win_rate,
)

UNIT = st.floats(0.0, 1.0)


@given(UNIT, UNIT)
def test_the_win_rate_is_the_strong_models_chance_to_win_a_tie_counting_half(
    q_s: float, q_w: float
) -> None:
    # Enumerate the four outcomes of two independent answers (1 = good, 0 = bad).
    expected = 0.0
    for s, w in itertools.product((0, 1), repeat=2):
        p = (q_s if s else 1 - q_s) * (q_w if w else 1 - q_w)
        expected += p * (1.0 if s > w else 0.5 if s == w else 0.0)
    win = strong_win_rate({"s": q_s, "w": q_w}, "s", "w")
    assert win == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= win <= 1.0


def test_predictions_outside_the_unit_interval_are_clipped() -> None:
    assert strong_win_rate({"s": 1.2, "w": -0.3}, "s", "w") == 1.0
    assert strong_win_rate({"s": -0.1, "w": 1.5}, "s", "w") == 0.0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"weak": "b", "threshold": 0.5}, "parameter 'strong' is required"),
        ({"strong": "a", "weak": "b"}, "threshold must be a number, got None"),
        ({"strong": "a", "weak": "b", "threshold": True}, "threshold must be a number"),
        ({"strong": "a", "weak": "b", "threshold": 1.01}, r"threshold must be in \[0, 1\]"),
        ({"strong": "a", "weak": "b", "threshold": 0.5, "k": 1}, "unknown parameter"),
    ],
)
def test_its_parameters_are_checked(params: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        RouteLLMThreshold("r", params, holder=BundleHolder())


def test_it_is_a_built_in_kind_that_needs_the_active_router() -> None:
    holder = BundleHolder()
    params = {"strong": "a", "weak": "b", "threshold": 0.2}
    strategy = strategy_class("routellm").from_config("r", params, holder=holder)
    assert isinstance(strategy, RouteLLMThreshold)
    assert strategy.needs_embedding
    with pytest.raises(ConfigError, match="the active router does not score a and b"):
        strategy.choose(RouteInput("hi"), [ModelOption("a"), ModelOption("b")])
    # The calibrated threshold strategy is built the same way, sharing the holder.
    calibrated = strategy_class("threshold").from_config(
        "t", {"strong": "a", "weak": "b"}, holder=holder
    )
    assert calibrated.kind == "threshold"
    assert calibrated.choose(RouteInput("hi"), [ModelOption("a"), ModelOption("b")]).model == "a"
