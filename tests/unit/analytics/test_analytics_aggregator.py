"""The aggregates: exact window numbers, the join in either order, windows and bounds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq_analytics.core.aggregator import OTHER
from routeiq_analytics.core.records import Decision, Feedback
from unit.analytics.helpers import STRONG, T0, WEAK, Clock, aggregator, decision, feedback


def _events() -> tuple[list[Decision], list[Feedback]]:
    decisions = [
        decision("d1", model=STRONG, ab_arm="A", input_tokens=1000, output_tokens=2000,
                 routing_ms=2.0),
        decision("d2", model=WEAK, ab_arm="A", input_tokens=1000, output_tokens=1000,
                 routing_ms=1.0),
        decision("d3", model=WEAK, strategy="learned", ab_arm="B", exploration=True,
                 input_tokens=500, output_tokens=500, cost_usd=0.005, routing_ms=4.0),
        decision("d4", model=STRONG, strategy="learned", ab_arm="B", status="ERROR",
                 input_tokens=0, output_tokens=0, routing_ms=3.0, fallback=True),
        decision("d5", model="unpriced-model", strategy="learned", input_tokens=100,
                 output_tokens=100, routing_ms=5.0),
    ]  # fmt: skip
    feedbacks = [
        feedback("f1", "d1", 1.0),
        feedback("f2", "d2", 0.0),
        feedback("f3", "d2", 1.0, candidate=STRONG),  # shadow: the strong model's answer
        feedback("f4", "d3", 0.5),
        feedback("f1", "d1", 1.0),  # redelivered
        feedback("f6", "d5", 0.5, candidate=WEAK),  # shadow on a request another model served
        feedback("f7", "d4", 0.0, candidate=STRONG),  # names the served model: served feedback
    ]
    return decisions, feedbacks


def test_summary_numbers_worked_by_hand() -> None:
    clock = Clock(T0 + 5)
    agg = aggregator(clock)
    decisions, feedbacks = _events()
    for d in decisions:
        agg.add_decision(d)
    for f in feedbacks:
        agg.add_feedback(f)
    s = agg.summary(300)

    assert s["window"] == "5m"
    assert s["requests"] == {
        "total": 5,
        "by_model": {STRONG: 2, WEAK: 2, "unpriced-model": 1},
        "by_status": {"ERROR": 1, "SUCCESS": 4},
    }
    assert s["success_rate"] == 4 / 5
    assert s["exploration_share"] == 1 / 5
    assert s["fallback_share"] == 1 / 5
    # Actual: d1 (1000×10 + 2000×30)/1e6 = 0.07; d2 2000×0.6/1e6 = 0.0012; d3 its own 0.005;
    # d4 no tokens; d5 has no price (counted as unpriced, $0).
    assert s["cost"]["total_usd"] == pytest.approx(0.0762)
    assert s["cost"]["per_1k_requests_usd"] == pytest.approx(0.0762 / 5 * 1000)
    assert s["cost"]["unpriced_requests"] == 1
    assert s["cost"]["by_model"][STRONG] == pytest.approx(0.07)
    # Always-strong: 0.07 + 0.04 + 0.02 + 0 + 0.004; always-weak: 0.0018 + 0.0012 + 0.0006
    # + 0 + 0.00012.
    strong = s["savings"]["always_strong"]
    assert strong["baseline_usd"] == pytest.approx(0.134)
    assert strong["saved_usd"] == pytest.approx(0.134 - 0.0762)
    assert strong["saved_pct"] == pytest.approx((0.134 - 0.0762) / 0.134 * 100)
    assert s["savings"]["always_weak_usd"] == pytest.approx(0.00372)
    # Served quality: f1 1.0, f2 0.0, f4 0.5, f7 0.0 → 0.375. Strong: f1, f3 (shadow), f7 →
    # 2/3. Weak: f2, f4, f6 (shadow) → 1/3. p* = (0.375 - 1/3) / (2/3 - 1/3) = 0.125.
    rnd = s["savings"]["random_equal_quality"]
    assert rnd["target_quality"] == pytest.approx(0.375)
    assert rnd["strong_quality"] == pytest.approx(2 / 3)
    assert rnd["weak_quality"] == pytest.approx(1 / 3)
    assert rnd["strong_share"] == pytest.approx(0.125)
    random_cost = 0.125 * 0.134 + 0.875 * 0.00372
    assert rnd["baseline_usd"] == pytest.approx(random_cost)
    assert rnd["saved_usd"] == pytest.approx(random_cost - 0.0762)
    assert rnd["reachable"] is True
    # Routing latency 2, 1, 4, 3, 5 → inverse-CDF p50 is the 3rd smallest, p95 the 5th.
    lat = s["routing_latency_ms"]
    assert (lat["p50"], lat["p95"], lat["observed"], lat["exact"]) == (3.0, 5.0, 5, True)
    # Shadow feedback (f3, f6) grades models, never the strategy that did not serve it.
    by_strategy = s["quality"]["by_strategy"]
    assert by_strategy["threshold"]["quality"] == {"mean": 0.5, "count": 2}
    assert by_strategy["threshold"]["requests"] == 2
    assert by_strategy["threshold"]["cost_usd"] == pytest.approx(0.0712)
    assert by_strategy["learned"]["quality"] == {"mean": 0.25, "count": 2}
    assert by_strategy["learned"]["success_rate"] == pytest.approx(2 / 3)
    assert s["quality"]["by_arm"]["A"]["quality"] == {"mean": 0.5, "count": 2}
    assert s["quality"]["by_arm"]["B"]["quality"] == {"mean": 0.25, "count": 2}
    assert set(s["quality"]["by_arm"]) == {"A", "B"}  # d5 has no arm
    assert s["quality"]["by_model"][STRONG] == {
        "mean": pytest.approx(2 / 3),
        "count": 3,
        "served_count": 2,
        "shadow_count": 1,
    }
    assert s["quality"]["by_model"][WEAK]["shadow_count"] == 1
    assert s["model_mix"][STRONG] == 0.4
    assert s["pipeline"]["feedback_duplicate"] == 1
    assert s["pipeline"]["feedback_joined"] == 6


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 12)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items() if k != "pipeline"}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_window(rnd: Any) -> None:
    decisions, feedbacks = _events()
    reference = aggregator(Clock(T0 + 5))
    for d in decisions:
        reference.add_decision(d)
    for f in feedbacks:
        reference.add_feedback(f)

    events: list[Decision | Feedback] = [*decisions, *feedbacks]
    rnd.shuffle(events)
    shuffled = aggregator(Clock(T0 + 5))
    for event in events:
        if isinstance(event, Decision):
            shuffled.add_decision(event)
        else:
            shuffled.add_feedback(event)
    assert _rounded(shuffled.summary(300)) == _rounded(reference.summary(300))
    assert shuffled.sizes()["pending_feedback"] == 0


def test_feedback_before_its_decision_waits_then_joins() -> None:
    agg = aggregator(Clock(T0 + 5))
    assert agg.add_feedback(feedback("f1", "d1", 0.25)) == "pending"
    assert agg.add_feedback(feedback("f1", "d1", 0.25)) == "duplicate"
    assert agg.sizes()["pending_feedback"] == 1
    assert agg.summary(300)["quality"]["overall"] == {"mean": None, "count": 0}
    assert agg.add_decision(decision("d1")) == "applied"
    assert agg.sizes()["pending_feedback"] == 0
    s = agg.summary(300)
    assert s["quality"]["overall"] == {"mean": 0.25, "count": 1}
    assert s["pipeline"]["feedback_waited"] == 1


def test_redelivered_decisions_are_counted_once() -> None:
    agg = aggregator(Clock(T0 + 5))
    assert agg.add_decision(decision("d1")) == "applied"
    assert agg.add_decision(decision("d1")) == "duplicate"
    assert agg.summary(300)["requests"]["total"] == 1


def test_windows_take_only_their_buckets_and_retention_drops_older() -> None:
    clock = Clock(T0 + 5)
    agg = aggregator(clock, retention_s=3600)
    agg.add_decision(decision("now", timestamp_s=T0))
    agg.add_decision(decision("six-min", timestamp_s=T0 - 360))
    assert agg.add_decision(decision("too-old", timestamp_s=T0 - 3600)) == "too_old"
    # A producer clock ahead of ours counts in the current bucket.
    agg.add_decision(decision("future", timestamp_s=T0 + 900))
    assert agg.summary(300)["requests"]["total"] == 2
    assert agg.summary(3600)["requests"]["total"] == 3
    # Feedback on a decision whose bucket is gone is late: counted, not applied.
    assert agg.add_feedback(feedback("f", "too-old", 1.0)) == "late"
    # 55 minutes later only the decisions that were 'now' and 'future' are left, and they are
    # outside a 5-minute window.
    clock.now = T0 + 3300
    assert agg.summary(3600)["requests"]["total"] == 2
    assert agg.summary(300)["requests"]["total"] == 0
    clock.now = T0 + 3600 + 5
    assert agg.summary(3600)["requests"]["total"] == 0
    assert agg.sizes()["buckets"] == 0
    assert agg.add_feedback(feedback("g", "now", 1.0)) == "pending"  # forgotten with its bucket


def test_a_window_is_its_most_recent_buckets_including_the_current_one() -> None:
    clock = Clock(T0 + 9.5)
    agg = aggregator(clock, bucket_s=10)
    agg.add_decision(decision("a", timestamp_s=T0 - 290))  # bucket T0-290: the 30th back
    agg.add_decision(decision("b", timestamp_s=T0 - 291))  # bucket T0-300: the 31st
    s = agg.summary(300)
    assert s["requests"]["total"] == 1
    assert s["from"] == "2027-01-15T07:55:10.000Z"  # T0 - 290


def test_memory_stays_bounded_whatever_the_traffic() -> None:
    clock = Clock(T0)
    agg = aggregator(
        clock,
        bucket_s=10,
        retention_s=600,
        latency_sample_size=4,
        max_join_decisions=500,
        max_pending_feedback=50,
        feedback_wait_s=120,
    )
    for i in range(20_000):
        clock.now = T0 + i * 0.9  # five simulated hours
        agg.add_decision(decision(f"d{i}", timestamp_s=clock.now, routing_ms=float(i % 97)))
        agg.add_feedback(feedback(f"f{i}", f"never-{i}", 1.0))
        sizes = agg.sizes()
        assert sizes["buckets"] <= 600 // 10 + 1
        assert sizes["join_decisions"] <= 500
        assert sizes["pending_feedback"] <= 50
    # Every bucket's latency sample stays within its reservoir capacity.
    s = agg.summary(600)
    assert s["routing_latency_ms"]["sampled"] <= 61 * 4
    assert s["routing_latency_ms"]["observed"] > s["routing_latency_ms"]["sampled"]
    assert s["routing_latency_ms"]["exact"] is False
    assert s["pipeline"]["feedback_expired"] == 20_000 - s["pipeline"]["pending_feedback"]


def test_feedback_waits_at_most_feedback_wait() -> None:
    clock = Clock(T0)
    agg = aggregator(clock, feedback_wait_s=60)
    agg.add_feedback(feedback("f", "d", 1.0))
    clock.now = T0 + 70  # a later bucket: expiry runs
    agg.add_decision(decision("d", timestamp_s=T0 + 70))
    s = agg.summary(300)
    assert s["quality"]["overall"]["count"] == 0
    assert s["pipeline"]["feedback_expired"] == 1


def test_label_cardinality_is_capped() -> None:
    agg = aggregator(Clock(T0 + 5), max_labels=2)
    for i, model in enumerate([STRONG, WEAK, "third", "fourth"]):
        agg.add_decision(decision(f"d{i}", model=model))
    assert agg.summary(300)["requests"]["by_model"] == {OTHER: 2, STRONG: 1, WEAK: 1}


def test_timeseries_steps_add_up_to_the_window() -> None:
    clock = Clock(T0 + 5)
    agg = aggregator(clock)
    for i in range(120):
        agg.add_decision(
            decision(
                f"d{i}",
                timestamp_s=T0 - i * 29,
                model=STRONG if i % 3 else WEAK,
                input_tokens=i,
                output_tokens=2 * i,
                status="SUCCESS" if i % 5 else "ERROR",
            )
        )
    s = agg.summary(3600)
    ts = agg.timeseries(3600, 30)
    assert ts["step_s"] == 120
    assert len(ts["t"]) == 30
    assert ts["t"] == sorted(ts["t"])
    assert ts["t"][-1] + ts["step_s"] == T0 + 10
    for model, n in s["requests"]["by_model"].items():
        assert sum(ts["requests_by_model"][model]) == n
    assert math.fsum(ts["cost_usd"]) == pytest.approx(s["cost"]["total_usd"])
    assert math.fsum(ts["always_strong_usd"]) == pytest.approx(
        s["savings"]["always_strong"]["baseline_usd"]
    )
    rates = [r for r in ts["success_rate"] if r is not None]
    assert rates
    assert all(0.0 <= r <= 1.0 for r in rates)
