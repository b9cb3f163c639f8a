"""Which baseline the gate measures a challenger against, and what it does without one."""

from __future__ import annotations

import math

from routeiq_trainer.core.gate import judge


def _judge(**changes):
    args = {
        "metric": "aiq",
        "margin": 0.01,
        "challenger": {"aiq": 0.70},
        "random": {"aiq": 0.50},
        "champion_version": "v1",
        "champion": {"aiq": 0.695},
        "champion_note": "champion v1",
        "when_incomparable": "hold",
    }
    return judge(**{**args, **changes})


def test_a_champion_scored_on_the_same_rows_is_the_baseline() -> None:
    decision = _judge()
    assert not decision.passed  # 0.70 beats 0.695 by less than the margin
    assert decision.baseline == 0.695
    assert decision.baseline_label == "champion v1"
    assert _judge(champion={"aiq": 0.6}).passed


def test_without_a_champion_a_random_router_is_the_baseline() -> None:
    decision = _judge(champion_version=None, champion=None)
    assert decision.passed
    assert decision.baseline == 0.50
    assert "random router" in decision.baseline_label


def test_an_incomparable_champion_holds_or_promotes_as_configured() -> None:
    note = "champion v1 cannot be scored here: other candidates"
    held = _judge(champion=None, champion_note=note)
    assert not held.passed
    assert math.isnan(held.baseline)
    assert held.reason == f"{note}; gate_when_incomparable=hold"
    assert _judge(champion=None, champion_note=note, when_incomparable="promote").passed
