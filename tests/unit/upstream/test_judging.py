"""The offline judge through the upstream's HTTP app, fed the blind judge's real prompt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from routeiq.errors import ConfigError
from routeiq.routing.datasets import GPT4, MIXTRAL, RoutingDataset
from routeiq.routing.judge import (
    BlindJudge,
    BlindVerdict,
    DroppedVerdict,
    Messages,
    measure_order_bias,
    render_prompt,
)
from routeiq.routing.oracle import GradeScale
from routeiq_upstream.config import UpstreamSettings
from routeiq_upstream.core import (
    ModelCatalog,
    OfflineJudge,
    OfflineUpstream,
    PromptIndex,
    TokenCounter,
)
from routeiq_upstream.core.answers import scored_text
from routeiq_upstream.core.tokens import ApproxTokenizer
from routeiq_upstream.wiring import build_upstream
from starlette.testclient import TestClient

JUDGE = "routeiq-judge"


def judge_upstream(index: PromptIndex, scale: GradeScale | None = None) -> OfflineUpstream:
    return OfflineUpstream(
        index=index,
        catalog=ModelCatalog(models=index.models, aliases={"gpt-4": GPT4}),
        counter=TokenCounter(encoder=ApproxTokenizer()),
        judge=OfflineJudge(index=index, model=JUDGE, scale=scale or GradeScale()),
    )


def http_call(client: TestClient) -> Callable[[Messages], Any]:
    """The judge's seam, answered by the app over HTTP."""

    async def call(messages: Messages) -> str:
        response = client.post("/v1/chat/completions", json={"model": JUDGE, "messages": messages})
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"])

    return call


@pytest.fixture
def judge_client(
    index: PromptIndex, client_for: Callable[..., TestClient]
) -> tuple[TestClient, BlindJudge]:
    client = client_for(judge_upstream(index))
    return client, BlindJudge(call=http_call(client), model=JUDGE)


def test_grades_recorded_answers_by_their_recorded_score(
    judge_client: tuple[TestClient, BlindJudge],
) -> None:
    client, judge = judge_client
    # Whitespace differs from the data ("What is  2+2?\n", a leading space stripped).
    answers = {GPT4: "4", MIXTRAL: " 5 "}
    for seed in range(6):
        verdict = asyncio.run(judge.judge("What is 2+2?", answers, seed=seed))
        assert isinstance(verdict, BlindVerdict)
        assert verdict.grades == {GPT4: "correct", MIXTRAL: "wrong"}
        assert verdict.attempts == 1
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": JUDGE,
            "messages": [{"role": "user", "content": render_prompt("What is 2+2?", ["5", "4"])}],
        },
    )
    assert response.json()["choices"][0]["message"]["content"] == "A: wrong\nB: correct"
    assert response.headers["x-routeiq-answer"] == "judged"
    assert response.headers["x-routeiq-prompt-id"] == "tiny-0"


def test_scored_stand_ins_are_graded_through_the_scale(
    index: PromptIndex, judge_client: tuple[TestClient, BlindJudge]
) -> None:
    _, judge = judge_client
    (tiny, scores) = index.lookup("Name a colour.")
    answers = {
        "small": scored_text(model="small-model", record=scores, score=0.5),
        "big": scored_text(model="big-model", record=scores, score=1.0),
        "mixtral": scored_text(model=MIXTRAL, record=tiny, score=1.0),
        "gpt": "Blue.",
    }
    verdict = asyncio.run(judge.judge("Name a colour.", answers, seed=1))
    assert isinstance(verdict, BlindVerdict)
    assert verdict.grades == {
        "small": "partial",
        "big": "correct",
        "mixtral": "correct",
        "gpt": "correct",
    }


@pytest.mark.parametrize(
    ("query", "answers", "reason"),
    [
        (
            "What is 2+2?",
            {GPT4: "4", MIXTRAL: "four"},
            "cannot grade answer {label}: its text is not a recorded answer to this question.",
        ),
        (
            "Unknown question?",
            {GPT4: "4", MIXTRAL: "5"},
            "cannot grade: the question is not in the recorded benchmark data.",
        ),
    ],
)
def test_what_it_cannot_grade_is_dropped_not_guessed(
    judge_client: tuple[TestClient, BlindJudge],
    query: str,
    answers: dict[str, str],
    reason: str,
) -> None:
    _, judge = judge_client
    verdict = asyncio.run(judge.judge(query, answers, seed=2))
    assert isinstance(verdict, DroppedVerdict)
    assert verdict.attempts == 2  # the retry (with the correction turn) got the same answer
    label = "AB"[verdict.order.index(MIXTRAL)]
    assert reason.format(label=label) in verdict.reason
    assert verdict.reason.startswith("unparseable verdict: line 1 is not")


def test_a_request_without_a_judge_prompt_is_answered_as_ungradable(
    judge_client: tuple[TestClient, BlindJudge],
) -> None:
    client, _ = judge_client
    response = client.post(
        "/v1/chat/completions",
        json={"model": JUDGE, "messages": [{"role": "user", "content": "What is 2+2?"}]},
    )
    assert response.status_code == 200
    assert "cannot grade" in response.json()["choices"][0]["message"]["content"]
    assert response.headers["x-routeiq-known"] == "false"


def test_equal_texts_with_different_grades_are_not_graded(index: PromptIndex) -> None:
    judge = OfflineJudge(index=index, model=JUDGE, scale=GradeScale())
    records = index.lookup("What is 2+2?")
    assert judge.grade(records, "4") == ("correct", "")
    grade, why = OfflineJudge(
        index=PromptIndex.build([_same_text_table()]), model=JUDGE, scale=GradeScale()
    ).grade(PromptIndex.build([_same_text_table()]).lookup("Q?"), "same")
    assert grade is None
    assert why == "its text equals recorded answers graded correct, wrong"


def _same_text_table() -> RoutingDataset:
    return RoutingDataset(
        name="same",
        ids=["same-0"],
        prompts=["Q?"],
        models=(GPT4, MIXTRAL),
        scores=np.array([[1.0, 0.0]]),
        responses=[{GPT4: "same", MIXTRAL: "same"}],
    )


@pytest.mark.parametrize("name", [GPT4, "gpt-4"])
def test_the_judge_model_cannot_be_a_served_model_or_alias(index: PromptIndex, name: str) -> None:
    with pytest.raises(ConfigError, match="also a served model or alias"):
        OfflineUpstream(
            index=index,
            catalog=ModelCatalog(models=index.models, aliases={"gpt-4": GPT4}),
            counter=TokenCounter(encoder=ApproxTokenizer()),
            judge=OfflineJudge(index=index, model=name, scale=GradeScale()),
        )


def test_order_bias_on_gsm8k_through_the_offline_judge(
    benchmark_tables: dict[str, RoutingDataset], client_for: Callable[..., TestClient]
) -> None:
    table = benchmark_tables["gsm8k"]
    client = client_for(judge_upstream(PromptIndex.build([table])))
    judge = BlindJudge(call=http_call(client), model=JUDGE)
    rows = [i for i in range(0, len(table), 13) if all(table.responses[i].values())][:50]
    samples = [(table.prompts[i], dict(table.responses[i])) for i in rows]
    bias = asyncio.run(measure_order_bias(judge, samples))
    # Recorded answers that two models wrote identically cannot be told apart by text.
    ambiguous = sum(
        table.responses[i][GPT4].split() == table.responses[i][MIXTRAL].split()
        and table.scores[i][0] != table.scores[i][1]
        for i in rows
    )
    assert bias.pairs == len(rows)
    assert bias.judged == len(rows) - ambiguous
    assert bias.agreement == 1.0  # the offline judge reads content, never position
    for i in rows[:10]:
        verdict = asyncio.run(judge.judge(table.prompts[i], dict(table.responses[i])))
        assert isinstance(verdict, BlindVerdict)
        expected = {
            m: "correct" if table.scores[i][j] == 1 else "wrong" for j, m in enumerate(table.models)
        }
        assert verdict.grades == expected


def test_judge_settings_build_the_judge_and_refuse_contradictions() -> None:
    base = {"ROUTEIQ_UPSTREAM_DATASETS": "mt_bench", "ROUTEIQ_UPSTREAM_TOKENIZER": "approx"}
    upstream = build_upstream(
        UpstreamSettings.load(
            {
                **base,
                "ROUTEIQ_UPSTREAM_JUDGE_MODEL": "my-judge",
                "ROUTEIQ_UPSTREAM_JUDGE_CORRECT_AT": "0.9",
                "ROUTEIQ_UPSTREAM_JUDGE_WRONG_AT": "0.1",
            }
        )
    )
    assert upstream.judge is not None
    assert (upstream.judge.model, upstream.judge.scale) == ("my-judge", GradeScale(0.9, 0.1))
    assert upstream.describe()["judge"] == "my-judge"
    default = UpstreamSettings.load(base)
    assert (default.judge_model, default.judge_correct_at, default.judge_wrong_at) == (
        JUDGE,
        0.75,
        0.25,
    )
    with pytest.raises(ConfigError, match="judge_wrong_at"):
        UpstreamSettings.load({**base, "ROUTEIQ_UPSTREAM_JUDGE_WRONG_AT": "0.8"})
    with pytest.raises(ConfigError, match="judge_model"):
        UpstreamSettings.load({**base, "ROUTEIQ_UPSTREAM_JUDGE_MODEL": " "})
    clash = UpstreamSettings.load({**base, "ROUTEIQ_UPSTREAM_JUDGE_MODEL": "gpt-4"})
    with pytest.raises(ConfigError, match="also a served model or alias"):
        build_upstream(clash)
