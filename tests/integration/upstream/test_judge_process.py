"""The blind judge through LiteLLM against the upstream process: the real prompt, the real
parsing, grades from the recorded GSM8K correctness, and order bias measured both ways."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from integration.upstream.helpers import API_KEY, UpstreamProcess
from routeiq.routing.datasets import GPT4, MIXTRAL, load_named
from routeiq.routing.judge import (
    BlindJudge,
    BlindVerdict,
    DroppedVerdict,
    litellm_call,
    measure_order_bias,
)
from routeiq.routing.oracle import Oracle

pytestmark = pytest.mark.integration

JUDGE = "routeiq-judge"


@pytest.fixture(scope="module")
def judge(start_upstream: Callable[..., UpstreamProcess]) -> BlindJudge:
    upstream = start_upstream(api_key=API_KEY, datasets="gsm8k", tokenizer="approx")
    call = litellm_call(f"openai/{JUDGE}", api_base=upstream.base_url, api_key=API_KEY)
    return BlindJudge(call=call, model=JUDGE)


def test_gsm8k_verdicts_follow_the_recorded_correctness(judge: BlindJudge) -> None:
    table = load_named("gsm8k")
    oracle = Oracle(cheap=MIXTRAL, strong=GPT4)
    rows = [i for i in range(0, len(table), 97) if all(table.responses[i].values())]
    for i in rows:
        verdict = asyncio.run(judge.judge(table.prompts[i], dict(table.responses[i])))
        assert isinstance(verdict, BlindVerdict), verdict
        expected = {
            m: "correct" if table.scores[i][j] == 1 else "wrong" for j, m in enumerate(table.models)
        }
        assert verdict.grades == expected
        label = verdict.oracle_label(oracle)
        assert label is not None
        assert label.cell == f"{expected[MIXTRAL]}/{expected[GPT4]}"


def test_an_answer_outside_the_data_is_dropped_with_the_reason(judge: BlindJudge) -> None:
    table = load_named("gsm8k")
    answers = {GPT4: table.responses[0][GPT4], MIXTRAL: "I am not sure."}
    verdict = asyncio.run(judge.judge(table.prompts[0], answers, seed=5))
    assert isinstance(verdict, DroppedVerdict)
    assert verdict.attempts == 2
    assert "its text is not a recorded answer to this question" in verdict.reason


def test_order_bias_is_measured_through_litellm(judge: BlindJudge) -> None:
    table = load_named("gsm8k")
    rows = [i for i in range(1, len(table), 53) if all(table.responses[i].values())]
    bias = asyncio.run(
        measure_order_bias(judge, [(table.prompts[i], dict(table.responses[i])) for i in rows])
    )
    # Two models that wrote the same text but were scored differently cannot be told apart.
    ambiguous = [
        i
        for i in rows
        if table.responses[i][GPT4].split() == table.responses[i][MIXTRAL].split()
        and table.scores[i][0] != table.scores[i][1]
    ]
    assert bias.pairs == len(rows)
    assert bias.judged == len(rows) - len(ambiguous)
    assert len(bias.dropped_reasons) == 2 * len(ambiguous)
    assert bias.agreement == 1.0  # the offline judge reads the texts, never their positions
