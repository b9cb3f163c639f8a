"""The replay's blind judge: ratings parsed, failures counted, the model never named."""

from __future__ import annotations

import asyncio

import pytest
from routeiq.routing.datasets import load_gsm8k
from routeiq_cli.replay import JUDGE_PROMPT, Replayer, parse_rating


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Good work. Rating: [[10]]", 1.0),
        ("[[1]]", 0.0),
        ("meh [[5.5]]", 0.5),
        ("no rating here", None),
        ("[[42]]", 1.0),
    ],
)
def test_ratings_map_to_unit_scores(text: str, score: float | None) -> None:
    got = parse_rating(text)
    assert got == (None if score is None else pytest.approx(score))


def test_the_judge_grades_through_litellm_without_seeing_the_model() -> None:
    ds = load_gsm8k()
    good = Replayer(
        ds,
        gateway="http://unused",
        judge_model="openai/judge",
        judge_params={"mock_response": "Correct and clear. [[8]]", "api_key": "x"},
    )
    assert asyncio.run(good._grade(None, 0, "gpt-4-1106-preview", "18")) == pytest.approx(7 / 9)
    broken = Replayer(
        ds,
        gateway="http://unused",
        judge_model="openai/judge",
        judge_params={"mock_response": "I refuse to rate.", "api_key": "x"},
    )
    assert asyncio.run(broken._grade(None, 0, "gpt-4-1106-preview", "18")) is None
    assert broken.stats.judge_failures == 1
    assert "{answer}" in JUDGE_PROMPT
    assert "model" not in JUDGE_PROMPT.lower().replace("the answer", "")


def test_recorded_grading_uses_the_dataset_and_refuses_bad_settings() -> None:
    ds = load_gsm8k()
    r = Replayer(ds, gateway="http://unused")
    row = next(i for i in range(len(ds)) if ds.scores[i, 0] != ds.scores[i, 1])
    assert asyncio.run(r._grade(None, row, ds.models[0], "")) == ds.scores[row, 0]
    assert asyncio.run(r._grade(None, row, "unknown-model", "")) is None
    with pytest.raises(ValueError, match="upstream"):
        Replayer(ds, gateway="http://unused", shadow_fraction=0.5)
