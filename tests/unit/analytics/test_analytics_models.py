"""Savings over N candidate models through the aggregator: worked by hand, and as properties."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.routing.datasets import ModelPrice
from routeiq_analytics.core.aggregator import Aggregator
from unit.analytics.helpers import PRICES as PAIR_PRICES
from unit.analytics.helpers import STRONG, T0, WEAK, Clock, aggregator, decision, feedback

# Three priced candidates and one the price table does not know.
LARGE, MEDIUM, SMALL, MYSTERY = "large", "medium", "small", "mystery"
PRICES = {LARGE: ModelPrice(10.0, 30.0), MEDIUM: ModelPrice(2.0, 6.0), SMALL: ModelPrice(0.5, 0.5)}
CANDIDATES = (LARGE, MEDIUM, SMALL, MYSTERY)

# The window below, by hand. Tokens: in 1000 + 2000 + 4000 + 1000 + 500 = 8500, out 500 +
# 1000 + 2000 + 1000 + 500 = 5000.
ALWAYS = {
    LARGE: (8500 * 10 + 5000 * 30) / 1e6,  # 0.235
    MEDIUM: (8500 * 2 + 5000 * 6) / 1e6,  # 0.047
    SMALL: (8500 * 0.5 + 5000 * 0.5) / 1e6,  # 0.00675
}
# d1 0.025 + d2 0.01 + d3 0.003 + d4 its own 0.004 + d5 unpriced, no cost_usd: $0.
ACTUAL = 0.025 + 0.01 + 0.003 + 0.004


def _n_models(**overrides: Any) -> Aggregator:
    """Five requests over four candidates, graded on served and shadow answers."""
    values: dict[str, Any] = {"prices": PRICES, "strong_model": None, "weak_model": None}
    values.update(overrides)
    agg = aggregator(Clock(T0 + 5), **values)
    for decision_id, model, tokens_in, tokens_out, cost in [
        ("d1", LARGE, 1000, 500, None),
        ("d2", MEDIUM, 2000, 1000, None),
        ("d3", SMALL, 4000, 2000, None),
        ("d4", MYSTERY, 1000, 1000, 0.004),  # unknown, with its own cost
        ("d5", MYSTERY, 500, 500, None),  # unknown, without: $0, counted as unpriced
    ]:
        agg.add_decision(
            decision(
                decision_id,
                model=model,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=cost,
                candidates=CANDIDATES,
            )
        )
    for f in [
        # Served answers: 1.0, 0.5, 0.0, 1.0 → routed quality 0.625.
        feedback("s1", "d1", 1.0),
        feedback("s2", "d2", 0.5),
        feedback("s3", "d3", 0.0),
        feedback("s4", "d4", 1.0),
        # Shadow answers of models that did not serve. Per model, served and shadow:
        # large 1.0, 1.0, 0.5 → 5/6 (3); medium 0.5, 1.0, 1.0 → 5/6 (3);
        # small 0.0, 0.0, 0.5, 0.5 → 0.25 (4); mystery 1.0 (1).
        feedback("h1", "d3", 1.0, candidate=LARGE),
        feedback("h2", "d3", 1.0, candidate=MEDIUM),
        feedback("h3", "d2", 0.5, candidate=LARGE),
        feedback("h4", "d2", 0.0, candidate=SMALL),
        feedback("h5", "d1", 1.0, candidate=MEDIUM),
        feedback("h6", "d1", 0.5, candidate=SMALL),
        feedback("h7", "d4", 0.5, candidate=SMALL),
    ]:
        agg.add_feedback(f)
    return agg


def test_every_candidate_is_priced_and_the_most_expensive_is_the_baseline() -> None:
    s = _n_models(best_model_min_graded=3).summary(300)
    savings = s["savings"]
    assert s["cost"]["total_usd"] == pytest.approx(ACTUAL)
    assert list(savings["always_model_usd"]) == [LARGE, MEDIUM, SMALL]  # most expensive first
    assert savings["always_model_usd"] == pytest.approx(ALWAYS)
    top = savings["always_most_expensive"]
    assert top["model"] == LARGE
    assert top["tied"] == []
    assert top["baseline_usd"] == pytest.approx(0.235)
    assert top["saved_usd"] == pytest.approx(0.235 - 0.042)
    assert top["saved_pct"] == pytest.approx((0.235 - 0.042) / 0.235 * 100)
    # No pair configured: strong is the most expensive candidate, weak the cheapest.
    assert (savings["pair"], savings["strong_model"], savings["weak_model"]) == (
        "auto",
        LARGE,
        SMALL,
    )
    assert savings["always_strong"] == pytest.approx(
        {"baseline_usd": 0.235, "saved_usd": 0.193, "saved_pct": 0.193 / 0.235 * 100}
    )
    assert savings["always_weak_usd"] == pytest.approx(0.00675)
    # Random mix of the auto pair: p* = (0.625 - 0.25) / (5/6 - 0.25) = 9/14.
    rnd = savings["random_equal_quality"]
    assert rnd["strong_quality"] == pytest.approx(5 / 6)
    assert rnd["weak_quality"] == pytest.approx(0.25)
    assert rnd["strong_share"] == pytest.approx(9 / 14)
    assert rnd["baseline_usd"] == pytest.approx(9 / 14 * 0.235 + 5 / 14 * 0.00675)


def test_the_unknown_model_is_counted_but_is_no_baseline() -> None:
    s = _n_models().summary(300)
    assert s["requests"]["by_model"][MYSTERY] == 2
    assert s["cost"]["by_model"][MYSTERY] == pytest.approx(0.004)  # d4's own cost_usd
    assert s["cost"]["unpriced_requests"] == 1  # d5: no price and no cost_usd
    savings = s["savings"]
    assert MYSTERY not in savings["always_model_usd"]
    assert savings["unpriced_models"] == [MYSTERY]
    [note] = savings["notes"]
    assert note.startswith("no price for mystery: counted")
    assert "no always-model baseline" in note
    # Its tokens still count in every always-X cost: "these requests, on X".
    assert savings["always_model_usd"][SMALL] == pytest.approx((8500 + 5000) * 0.5 / 1e6)


def test_best_single_model_ties_go_to_the_cheaper_and_the_saving_is_positive() -> None:
    # large and medium both at 5/6 on 3 grades: medium is cheaper.
    best = _n_models(best_model_min_graded=3).summary(300)["savings"]["best_single_model"]
    assert best["model"] == MEDIUM
    assert best["quality"] == pytest.approx(5 / 6)
    assert best["graded"] == 3
    assert best["min_graded"] == 3
    assert best["routed_quality"] == pytest.approx(0.625)
    assert best["baseline_usd"] == pytest.approx(0.047)
    assert best["saved_usd"] == pytest.approx(0.047 - 0.042)
    assert best["saved_pct"] == pytest.approx(0.005 / 0.047 * 100)
    assert best["costs_more"] is False
    assert best["reason"] is None


def test_best_single_model_needs_enough_grades_and_can_cost_less_than_routing() -> None:
    # With 4 grades required only small qualifies: cheaper than routing, so "costs more".
    best = _n_models(best_model_min_graded=4).summary(300)["savings"]["best_single_model"]
    assert (best["model"], best["graded"]) == (SMALL, 4)
    assert best["quality"] == pytest.approx(0.25)
    assert best["baseline_usd"] == pytest.approx(0.00675)
    assert best["saved_usd"] == pytest.approx(0.00675 - 0.042)
    assert best["saved_pct"] == pytest.approx((0.00675 - 0.042) / 0.00675 * 100)
    assert best["costs_more"] is True


def test_no_candidate_with_enough_grades_says_so() -> None:
    best = _n_models(best_model_min_graded=5).summary(300)["savings"]["best_single_model"]
    assert best["model"] is None
    assert best["baseline_usd"] is None
    assert best["saved_usd"] is None
    assert best["costs_more"] is None
    assert best["reason"] == "no candidate has 5 graded answers in this window (most: small with 4)"
    assert best["routed_quality"] == pytest.approx(0.625)
    # The default minimum, 20, and an empty window.
    empty = aggregator(Clock(T0), pair=None, prices=PRICES)
    assert empty.summary(300)["savings"]["best_single_model"]["reason"] == (
        "no priced candidate model"
    )
    assert _n_models().summary(300)["savings"]["best_single_model"]["min_graded"] == 20


def test_an_unpriced_model_is_never_the_best_single_model() -> None:
    # mystery's one grade is the best mean (1.0), but it has no price: no "always" cost.
    best = _n_models(best_model_min_graded=1).summary(300)["savings"]["best_single_model"]
    assert best["model"] == MEDIUM


def test_configured_candidates_replace_the_ones_the_decisions_list() -> None:
    s = _n_models(candidates=[MEDIUM, SMALL]).summary(300)["savings"]
    assert s["always_model_usd"] == pytest.approx({MEDIUM: 0.047, SMALL: 0.00675})
    assert (s["always_most_expensive"]["model"], s["strong_model"], s["weak_model"]) == (
        MEDIUM,
        MEDIUM,
        SMALL,
    )
    assert s["unpriced_models"] == [MYSTERY]  # it served, so it is still reported


def test_a_configured_pair_that_is_not_a_candidate_is_kept_and_noted() -> None:
    s = _n_models(prices={**PRICES, **PAIR_PRICES}, strong_model=STRONG, weak_model=WEAK).summary(
        300
    )["savings"]
    assert (s["pair"], s["strong_model"], s["weak_model"]) == ("configured", STRONG, WEAK)
    assert s["always_strong"]["baseline_usd"] == pytest.approx((8500 * 10 + 5000 * 30) / 1e6)
    assert s["always_most_expensive"]["model"] == LARGE  # the pair is not a candidate
    assert any(
        "strong-model, weak-model are not candidates in this window" in note for note in s["notes"]
    )


def test_fewer_than_two_priced_candidates_means_no_pair() -> None:
    agg = aggregator(Clock(T0 + 5), pair=None, prices=PRICES)
    agg.add_decision(decision("d1", model=LARGE, candidates=(LARGE, MYSTERY)))
    s = agg.summary(300)["savings"]
    assert (s["strong_model"], s["weak_model"]) == (None, None)
    assert s["always_strong"] == {"baseline_usd": None, "saved_usd": None, "saved_pct": None}
    assert s["always_weak_usd"] is None
    assert s["random_equal_quality"]["reason"] == (
        "fewer than two priced candidate models in this window: no strong/weak pair"
    )
    assert s["always_most_expensive"]["model"] == LARGE
    ts = agg.timeseries(300, 5)
    assert ts["always_strong_usd"] == [None] * 5
    assert sum(ts["always_model_usd"][LARGE]) == pytest.approx(s["always_model_usd"][LARGE])


def test_ties_for_most_expensive_are_named() -> None:
    prices = {"a": ModelPrice(0.9, 0.9), "b": ModelPrice(0.9, 0.9), "c": ModelPrice(0.1, 0.1)}
    agg = aggregator(Clock(T0 + 5), pair=None, prices=prices)
    agg.add_decision(decision("d1", model="c", candidates=("b", "a", "c")))
    s = agg.summary(300)["savings"]
    assert s["always_most_expensive"]["model"] == "a"  # equal cost and list price: by name
    assert s["always_most_expensive"]["tied"] == ["b"]
    assert (s["strong_model"], s["weak_model"]) == ("a", "c")


def test_timeseries_has_every_candidates_always_cost() -> None:
    agg = _n_models()
    s = agg.summary(3600)["savings"]
    ts = agg.timeseries(3600, 12)
    assert list(ts["always_model_usd"]) == list(s["always_model_usd"])
    for model, cost in s["always_model_usd"].items():
        assert math.fsum(ts["always_model_usd"][model]) == pytest.approx(cost)
    assert math.fsum(v for v in ts["always_strong_usd"] if v is not None) == pytest.approx(
        s["always_strong"]["baseline_usd"]
    )


# ------------------------------------------------------------------ the two-model case


def _two_models(**overrides: Any) -> Aggregator:
    agg = aggregator(Clock(T0 + 5), **overrides)
    for i in range(12):
        agg.add_decision(
            decision(
                f"d{i}",
                model=STRONG if i % 3 == 0 else WEAK,
                input_tokens=100 + 37 * i,
                output_tokens=50 + 11 * i,
                cost_usd=0.001 if i == 5 else None,
            )
        )
        agg.add_feedback(feedback(f"f{i}", f"d{i}", (i % 4) / 3))
        agg.add_feedback(feedback(f"g{i}", f"d{i}", (i % 3) / 2, candidate=STRONG))
    return agg


def test_two_models_keep_their_pair_numbers_and_auto_finds_the_same_pair() -> None:
    configured = _two_models().summary(300)
    auto = _two_models(strong_model=None, weak_model=None).summary(300)
    # The strong/weak numbers are still the same requests' tokens at each model's price,
    # as they were when each bucket summed them per request.
    tokens = [(100 + 37 * i, 50 + 11 * i) for i in range(12)]
    strong = math.fsum(PAIR_PRICES[STRONG].cost(a, b) for a, b in tokens)
    weak = math.fsum(PAIR_PRICES[WEAK].cost(a, b) for a, b in tokens)
    savings = configured["savings"]
    assert savings["always_strong"]["baseline_usd"] == pytest.approx(strong, rel=1e-12)
    assert savings["always_weak_usd"] == pytest.approx(weak, rel=1e-12)
    assert (savings["strong_model"], savings["weak_model"], savings["pair"]) == (
        STRONG,
        WEAK,
        "configured",
    )
    # Without a pair, two models give the same pair and every same number.
    assert auto["savings"]["pair"] == "auto"
    for key in set(savings) - {"pair"}:
        assert auto["savings"][key] == savings[key], key
    assert {k: v for k, v in auto.items() if k != "savings"} == {
        k: v for k, v in configured.items() if k != "savings"
    }
    # With two models, the most expensive is the strong one.
    top = savings["always_most_expensive"]
    assert top["model"] == STRONG
    assert {k: top[k] for k in ("baseline_usd", "saved_usd", "saved_pct")} == (
        savings["always_strong"]
    )


# ------------------------------------------------------------------ properties

prices = st.tuples(
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
)
request = st.tuples(
    st.integers(min_value=0, max_value=5),  # served model (5: an unpriced one)
    st.integers(min_value=0, max_value=100_000),
    st.integers(min_value=0, max_value=100_000),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=10.0, allow_nan=False)),
    st.floats(min_value=0.0, max_value=1.0),  # served score
    st.integers(min_value=0, max_value=4),  # shadow candidate
    st.floats(min_value=0.0, max_value=1.0),  # shadow score
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(prices, min_size=2, max_size=5),
    st.lists(request, min_size=1, max_size=25),
    st.integers(min_value=1, max_value=6),
)
def test_most_expensive_bounds_every_single_model_saving(
    table: list[tuple[float, float]], requests: list[Any], min_graded: int
) -> None:
    names = [f"m{i}" for i in range(len(table))]
    price_table = {n: ModelPrice(*p) for n, p in zip(names, table, strict=True)}
    everyone = (*names, "unpriced")
    agg = aggregator(Clock(T0 + 5), pair=None, prices=price_table, best_model_min_graded=min_graded)
    for i, (served, tin, tout, cost, score, shadow, shadow_score) in enumerate(requests):
        model = everyone[min(served, len(everyone) - 1)]
        agg.add_decision(
            decision(
                f"d{i}",
                model=model,
                candidates=everyone,
                input_tokens=tin,
                output_tokens=tout,
                cost_usd=cost,
            )
        )
        agg.add_feedback(feedback(f"f{i}", f"d{i}", score))
        agg.add_feedback(
            feedback(f"g{i}", f"d{i}", shadow_score, candidate=names[shadow % len(names)])
        )
    s = agg.summary(300)
    savings, actual = s["savings"], s["cost"]["total_usd"]
    always = savings["always_model_usd"]
    assert set(always) == set(names)
    assert savings["unpriced_models"] == ["unpriced"]
    # Pricing token sums is pricing every request: a price is linear in tokens.
    for name in names:
        per_request = math.fsum(price_table[name].cost(r[1], r[2]) for r in requests)
        assert always[name] == pytest.approx(per_request, rel=1e-9, abs=1e-12)
    # The most expensive candidate gives the largest saving of all single-model baselines.
    top = savings["always_most_expensive"]
    assert top["baseline_usd"] == max(always.values())
    assert all(top["saved_usd"] >= cost - actual for cost in always.values())
    best = savings["best_single_model"]
    if best["model"] is not None:
        assert top["saved_usd"] >= best["saved_usd"]
        assert best["graded"] >= min_graded
        assert best["costs_more"] == (best["saved_usd"] < 0)
        # No priced candidate with enough grades has a better mean.
        for name, q in s["quality"]["by_model"].items():
            if name in always and q["count"] >= min_graded:
                assert q["mean"] <= best["quality"]
    else:
        assert all(
            q["count"] < min_graded for n, q in s["quality"]["by_model"].items() if n in always
        )
    # The auto pair spans the candidates' costs.
    assert savings["always_strong"]["baseline_usd"] == max(always.values())
    assert savings["always_weak_usd"] == min(always.values())
    assert savings["strong_model"] != savings["weak_model"]
