"""The routing engine: propensities, exploration, A/B assignment, strategies."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from routeiq.errors import ConfigError
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry, assign_arm
from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput

STRONG = ModelOption("strong", input_price=10, output_price=30, quality_rank=0.9)
WEAK = ModelOption("weak", input_price=0.6, output_price=0.6, quality_rank=0.6)
MID = ModelOption("mid", input_price=2, output_price=2, quality_rank=0.7)
CANDIDATES = [STRONG, WEAK, MID]


def engine(default: str = "cheapest", **config: object) -> RoutingEngine:
    registry = StrategyRegistry(holder=BundleHolder(), rng=random.Random(1))
    for kind in ("random", "cheapest", "strongest"):
        registry.register(kind, kind)
    registry.register(
        "threshold", "threshold", {"strong": "strong", "weak": "weak", "target_strong_pct": 30}
    )
    registry.register(
        "policy",
        "policy",
        {
            "default": "weak",
            "rules": [
                {"name": "code", "code": True, "model": "strong"},
                {"name": "long", "min_chars": 500, "model": "mid"},
            ],
            "domains": {"legal": "strong"},
            "budget_usd": 0.001,
        },
    )
    registry.register("learned", "learned", {"fallback": "strongest"})
    return RoutingEngine(
        registry,
        RoutingConfig(default=default, **config),  # type: ignore[arg-type]
        rng=random.Random(7),
    )


def test_propensities_sum_to_one_and_match_the_greedy_choice() -> None:
    e = engine(epsilon=0.1)
    d = e.route(RouteInput("hello"), CANDIDATES)
    assert sum(d.propensities.values()) == pytest.approx(1.0)
    greedy = "weak"  # cheapest
    assert d.propensities[greedy] == pytest.approx(0.9 + 0.1 / 3)
    assert d.propensities["strong"] == pytest.approx(0.1 / 3)


def test_exploration_happens_at_epsilon_and_is_flagged() -> None:
    e = engine(epsilon=0.2)
    decisions = [e.route(RouteInput(f"q{i}"), CANDIDATES) for i in range(3000)]
    explored = sum(d.exploration for d in decisions) / len(decisions)
    assert explored == pytest.approx(0.2, abs=0.03)
    picks = Counter(d.selected for d in decisions)
    # The non-greedy candidates are picked ε/K of the time each.
    assert picks["strong"] / 3000 == pytest.approx(0.2 / 3, abs=0.02)
    assert all(not d.exploration or d.reason for d in decisions)


def test_random_strategy_logs_uniform_propensities_without_exploration() -> None:
    d = engine("random", epsilon=0.5).route(RouteInput("x"), CANDIDATES)
    assert d.propensities == {c.name: pytest.approx(1 / 3) for c in CANDIDATES}
    assert d.exploration is False


def test_ab_assignment_is_deterministic_and_weighted() -> None:
    weights = {"cheapest": 0.8, "strongest": 0.2}
    arms = [assign_arm(f"user-{i}", weights, "salt") for i in range(5000)]
    assert arms == [assign_arm(f"user-{i}", weights, "salt") for i in range(5000)]
    assert arms.count("strongest") / 5000 == pytest.approx(0.2, abs=0.02)
    e = engine(epsilon=0.0, ab=weights)
    d1 = e.route(RouteInput("a", unit_key="user-42"), CANDIDATES)
    d2 = e.route(RouteInput("b", unit_key="user-42"), CANDIDATES)
    assert d1.arm == d2.arm
    assert d1.strategy == d1.arm


def test_domain_overrides_win_over_ab() -> None:
    e = engine(epsilon=0.0, ab={"cheapest": 1.0}, domain_overrides={"legal": "strongest"})
    d = e.route(RouteInput("contract?", domain="legal"), CANDIDATES)
    assert (d.strategy, d.arm, d.selected) == ("strongest", "domain:legal", "strong")


def test_policy_rules_domains_and_budget() -> None:
    e = engine("policy", epsilon=0.0)
    # Code goes to "strong", which costs more than the budget: the strongest model within
    # budget serves instead.
    capped = e.route(RouteInput("def f(x): return x"), CANDIDATES)
    assert capped.selected == "mid"
    assert "over budget" in capped.reason
    e2 = engine("policy", epsilon=0.0)
    e2.registry.register(
        "policy",
        "policy",
        {"default": "weak", "rules": [{"name": "code", "code": True, "model": "strong"}]},
    )
    d = e2.route(RouteInput("def f(x): return x"), CANDIDATES)
    assert d.selected == "strong"
    assert "rule 'code'" in d.reason
    assert e2.route(RouteInput("hello there"), CANDIDATES).selected == "weak"
    long = e.route(RouteInput("x" * 600), CANDIDATES)
    assert long.selected == "mid"
    assert long.reason == "rule 'long'"
    legal = e.route(RouteInput("may I?", domain="legal"), CANDIDATES)
    assert legal.selected == "mid"
    assert "domain 'legal'" in legal.reason
    assert "budget" in legal.reason


def test_learned_without_a_bundle_falls_back_and_says_so() -> None:
    d = engine("learned", epsilon=0.0).route(RouteInput("hi"), CANDIDATES)
    assert d.selected == "strong"
    assert "no learned router loaded" in d.reason
    assert d.router_version is None


def test_threshold_heuristic_calibrates_to_the_target_share() -> None:
    e = engine("threshold", epsilon=0.0)
    rng = np.random.default_rng(0)
    texts = [
        ("what is " + " ".join(["x"] * int(n)) + "?" + " 7+8" * int(m))
        for n, m in zip(rng.integers(1, 300, 3000), rng.integers(0, 3, 3000), strict=True)
    ]
    picks = [e.route(RouteInput(t), [STRONG, WEAK]).selected for t in texts]
    share = picks[500:].count("strong") / len(picks[500:])
    assert share == pytest.approx(0.30, abs=0.08)


def test_threshold_splits_ties_to_keep_the_target_and_logs_the_odds() -> None:
    # Every query scores the same (a router with few distinct scores does this to a share of
    # its traffic): ">= threshold" would send all of it to the strong model.
    e = engine("threshold", epsilon=0.0)
    decisions = [e.route(RouteInput("same question"), [STRONG, WEAK]) for _ in range(2000)]
    later = decisions[100:]
    share = sum(d.selected == "strong" for d in later) / len(later)
    assert share == pytest.approx(0.30, abs=0.04)
    assert later[0].propensities == pytest.approx({"strong": 0.30, "weak": 0.70})
    assert "a tie" in later[0].reason


def test_invalid_configuration_is_refused_with_the_reason() -> None:
    e = engine()
    with pytest.raises(ConfigError, match="unknown strategy name"):
        e.configure(default="nope")
    with pytest.raises(ConfigError, match="epsilon"):
        e.configure(epsilon=1.5)
    with pytest.raises(ConfigError, match="unknown parameter"):
        e.registry.register("t2", "threshold", {"strong": "a", "weak": "b", "bogus": 1})
    with pytest.raises(ConfigError, match="required"):
        e.registry.register("t3", "threshold", {"strong": "a"})
    with pytest.raises(ConfigError, match="seed must be an integer"):
        e.registry.register("t4", "threshold", {"strong": "a", "weak": "b", "seed": [1]})
    with pytest.raises(ConfigError, match="unknown strategy kind"):
        e.registry.register("x", "magic")
    assert e.config.default == "cheapest"  # nothing changed


def test_threshold_recalibrates_on_live_traffic_when_the_bundle_is_off(synthetic, tmp_path) -> None:
    from routeiq.routing.bundle import HmacKey, load_bundle
    from unit.routing.helpers import write_knn_bundle

    train, test = synthetic
    key = HmacKey(b"k" * 32)
    # Deliberately wrong: every score clears this, i.e. 100% strong calls.
    wrong = {"win_score_quantiles": [-10.0] * 101}
    folder = write_knn_bundle(tmp_path / "b", train, key, calibration=wrong)
    holder = BundleHolder()
    holder.swap(load_bundle(folder, key), at=0.0)
    registry = StrategyRegistry(holder=holder)
    registry.register("t", "threshold", {"strong": "a", "weak": "b", "target_strong_pct": 30})
    e = RoutingEngine(registry, RoutingConfig(default="t", epsilon=0.0))
    rng = np.random.default_rng(0)
    picks = []
    for i in range(800):
        emb = test.embeddings[i % len(test)] + rng.normal(scale=0.05, size=384).astype(np.float32)
        picks.append(
            e.route(
                RouteInput(f"q{i}", embed=lambda _, v=emb: v), [ModelOption("a"), ModelOption("b")]
            ).selected
        )
    # The bundle's calibration rules at first, and fades as live scores come in.
    assert picks[:50].count("a") == 50
    assert picks[:200].count("a") / 200 > 0.5
    live = picks[400:]
    assert live.count("a") / len(live) == pytest.approx(0.30, abs=0.08)
