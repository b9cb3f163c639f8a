"""Builders for analytics unit tests: a settable clock, decisions, feedback, an aggregator."""

from __future__ import annotations

from typing import Any

from routeiq.routing.datasets import ModelPrice
from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.core.records import Decision, Feedback

STRONG = "strong-model"
WEAK = "weak-model"
PRICES = {STRONG: ModelPrice(10.0, 30.0), WEAK: ModelPrice(0.6, 0.6)}
T0 = 1_800_000_000.0  # a bucket boundary for every bucket length used here
# Every chart the dashboard draws (``data-chart``), in the unit and the browser test alike.
DASHBOARD_CHARTS = frozenset(
    {"model-mix", "cost", "latency", "rates", "quality-strategy", "quality-arm", "quality-model"}
)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


DECISION = {
    "timestamp_s": T0,
    "model": STRONG,
    "strategy": "threshold",
    "ab_arm": None,
    "exploration": False,
    "fallback": False,
    "status": "SUCCESS",
    "input_tokens": 100,
    "output_tokens": 100,
    "cost_usd": None,
    "routing_ms": 1.0,
}


def decision(decision_id: str, **overrides: Any) -> Decision:
    return Decision(**{**DECISION, "decision_id": decision_id, **overrides})


def feedback(feedback_id: str, decision_id: str, score: float, **overrides: Any) -> Feedback:
    values = {"candidate": None, "created_s": T0, **overrides}
    return Feedback(feedback_id=feedback_id, decision_id=decision_id, score=score, **values)


def aggregator(
    clock: Clock, *, pair: tuple[str, str] | None = (STRONG, WEAK), **overrides: Any
) -> Aggregator:
    """An aggregator over ``PRICES``; ``pair=None`` derives strong and weak per window."""
    strong, weak = pair or (None, None)
    values = {"bucket_s": 10, "retention_s": 3600, "prices": PRICES, "clock": clock}
    return Aggregator(**{**values, "strong_model": strong, "weak_model": weak, **overrides})
