"""Rollout flags: a sticky share of users, enabled teams and domains, monitoring only, and the
kill switch; changed through the admin transaction, all or nothing."""

from __future__ import annotations

import pytest
from routeiq.errors import ConfigError
from routeiq.routing.admin import apply_strategy_change, parse_strategy_change, rollout_from
from routeiq.routing.engine import KILL_SWITCH_ARM, ROLLOUT_ARM, Rollout
from routeiq.routing.strategies import RouteInput
from unit.routing.test_engine import CANDIDATES, engine

USERS = [f"user-{i}" for i in range(10_000)]


def _served_by_rollout(e, users: list[str], **request: str) -> set[str]:
    return {
        u
        for u in users
        if e.route(RouteInput("hello", unit_key=u, **request), CANDIDATES).arm == ROLLOUT_ARM
    }


def test_a_ten_percent_rollout_serves_ten_percent_of_users_each_consistently() -> None:
    e = engine(epsilon=0.0, rollout=Rollout(strategy="strongest", percent=10))
    first = _served_by_rollout(e, USERS)
    assert 0.08 <= len(first) / len(USERS) <= 0.12
    assert _served_by_rollout(e, USERS) == first  # the same users, every time
    for user in list(first)[:50]:
        decision = e.route(RouteInput("hi", unit_key=user), CANDIDATES)
        assert (decision.strategy, decision.selected) == ("strongest", "strong")
    outside = next(u for u in USERS if u not in first)
    decision = e.route(RouteInput("hi", unit_key=outside), CANDIDATES)
    assert (decision.strategy, decision.arm) == ("cheapest", None)
    # Raising the share only adds users: nobody in at 10% leaves at 20%.
    e.configure(rollout=Rollout(strategy="strongest", percent=20))
    wider = _served_by_rollout(e, USERS)
    assert first <= wider
    assert 0.18 <= len(wider) / len(USERS) <= 0.22


def test_enabled_teams_and_domains_are_always_in() -> None:
    e = engine(
        epsilon=0.0,
        rollout=Rollout(
            strategy="strongest", percent=0, teams=frozenset({"red"}), domains=frozenset({"law"})
        ),
    )
    assert _served_by_rollout(e, USERS[:200]) == set()
    assert len(_served_by_rollout(e, USERS[:200], team="red")) == 200
    assert len(_served_by_rollout(e, USERS[:200], domain="law")) == 200
    assert _served_by_rollout(e, USERS[:200], team="blue", domain="news") == set()


def test_monitoring_only_decides_and_logs_but_never_serves() -> None:
    e = engine(
        epsilon=0.0, rollout=Rollout(strategy="strongest", percent=100, monitoring_only=True)
    )
    decision = e.route(RouteInput("hello", unit_key="u1"), CANDIDATES)
    assert (decision.strategy, decision.selected, decision.arm) == ("cheapest", "weak", None)
    assert decision.propensities["weak"] == 1.0  # what served is what the propensities say
    assert "monitoring strongest would choose strong" in decision.reason
    # Units outside the rollout are not monitored.
    e.configure(rollout=Rollout(strategy="strongest", percent=0, monitoring_only=True))
    assert "monitoring" not in e.route(RouteInput("hello", unit_key="u1"), CANDIDATES).reason


def test_the_kill_switch_sends_everything_to_the_default_without_exploration() -> None:
    e = engine(
        epsilon=0.5,
        ab={"strongest": 1.0},
        domain_overrides={"law": "strongest"},
        rollout=Rollout(strategy="strongest", percent=100),
        kill_switch=True,
    )
    for i in range(300):
        decision = e.route(
            RouteInput("hello", unit_key=f"u{i}", domain="law", team="red"), CANDIDATES
        )
        assert (decision.strategy, decision.selected) == ("cheapest", "weak")
        assert decision.arm == KILL_SWITCH_ARM
        assert not decision.exploration
        assert decision.propensities["weak"] == 1.0
        assert decision.reason.startswith("kill switch: ")


def test_rollouts_are_validated_before_anything_changes() -> None:
    with pytest.raises(ConfigError, match="rollout strategy 'nope' is not registered"):
        engine(rollout=Rollout(strategy="nope", percent=5))
    with pytest.raises(ConfigError, match=r"percent must be in \[0, 100\]"):
        engine(rollout=Rollout(strategy="strongest", percent=101))
    for bad, reason in (
        ([], "must be an object"),
        ({"percent": 5}, "string 'strategy'"),
        ({"strategy": "x", "share": 5}, "unknown field"),
        ({"strategy": "x", "teams": "red"}, "list of strings"),
        ({"strategy": "x", "monitoring_only": "yes"}, "true or false"),
        ({"strategy": "x", "percent": "ten"}, "must be a number"),
    ):
        with pytest.raises(ConfigError, match=reason):
            rollout_from(bad)


def test_the_admin_transaction_sets_and_ends_a_rollout_and_the_kill_switch() -> None:
    e = engine(epsilon=0.0)
    body = {
        "register": [{"name": "best", "kind": "strongest"}],
        "rollout": {"strategy": "best", "percent": 100, "teams": ["red"]},
    }
    config = apply_strategy_change(e, parse_strategy_change(body))
    assert config.rollout == Rollout(strategy="best", percent=100, teams=frozenset({"red"}))
    assert config.describe()["rollout"]["teams"] == ["red"]
    assert e.route(RouteInput("hi", unit_key="u"), CANDIDATES).strategy == "best"
    # A change that is wrong anywhere changes nothing: the kill switch is not set either.
    bad = {"kill_switch": True, "rollout": {"strategy": "missing", "percent": 5}}
    with pytest.raises(ConfigError, match="not registered"):
        apply_strategy_change(e, parse_strategy_change(bad))
    assert not e.config.kill_switch
    assert e.config.rollout is not None
    config = apply_strategy_change(e, parse_strategy_change({"kill_switch": True}))
    assert config.kill_switch
    assert e.route(RouteInput("hi", unit_key="u"), CANDIDATES).arm == KILL_SWITCH_ARM
    config = apply_strategy_change(
        e, parse_strategy_change({"kill_switch": False, "rollout": None})
    )
    assert (config.kill_switch, config.rollout) == (False, None)
    with pytest.raises(ConfigError, match="true or false"):
        parse_strategy_change({"kill_switch": "on"})
    # Found by the schemathesis run: a null default reached the validation (a 500).
    with pytest.raises(ConfigError, match="'default' must be a strategy name"):
        parse_strategy_change({"default": None})
