"""The blind judge: hidden names, seeded order, strict parsing, one retry, order bias."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.routing.judge import (
    BlindJudge,
    BlindVerdict,
    DroppedVerdict,
    JudgeError,
    Messages,
    UnparseableVerdictError,
    measure_order_bias,
    parse_prompt,
    parse_verdict,
    render_prompt,
    render_verdict,
)
from routeiq.routing.oracle import Oracle

CHEAP, STRONG, THIRD = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview", "llama-3"
QUERY = "Natalia sold 48 clips in April and half as many in May. How many clips in total?"
ANSWERS = {CHEAP: "She sold 48 + 24 = 70 clips.", STRONG: "48 + 24 = 72. The answer is 72."}


class ContentJudge:
    """Reads the real prompt back and grades each answer by what it says (72 is right), so
    its verdict depends on the texts only; records every message list it was sent."""

    def __init__(self, replies: list[str] | None = None) -> None:
        self.replies = list(replies or [])
        self.sent: list[Messages] = []

    async def __call__(self, messages: Messages) -> str:
        self.sent.append(messages)
        if self.replies:
            return self.replies.pop(0)
        prompt = parse_prompt(messages[0]["content"])
        assert prompt is not None
        return render_verdict(["correct" if "72" in t else "wrong" for t in prompt.texts])


def run(coro):
    return asyncio.run(coro)


def test_prompt_hides_model_names_and_order_follows_the_seed() -> None:
    call = ContentJudge()
    judge = BlindJudge(call=call, model="routeiq-judge")
    answers = {**ANSWERS, THIRD: "About 70."}
    orders = set()
    for seed in range(12):
        verdict = run(judge.judge(QUERY, answers, seed=seed))
        assert isinstance(verdict, BlindVerdict)
        assert verdict.seed == seed
        assert verdict.order == BlindJudge.shuffled(answers, seed)
        orders.add(verdict.order)
        prompt = call.sent[-1][0]["content"]
        for name in (*answers, "gpt", "mixtral", "llama", "routeiq-judge"):
            assert name.lower() not in prompt.lower()
        # The answers appear in the recorded order, labelled A, B, C.
        read = parse_prompt(prompt)
        assert read is not None
        assert read.query == QUERY
        assert read.texts == tuple(answers[m] for m in verdict.order)
    assert len(orders) > 1


def test_grades_map_back_through_the_shuffle() -> None:
    judge = BlindJudge(call=ContentJudge(), model="routeiq-judge")
    for seed in range(8):
        verdict = run(judge.judge(QUERY, ANSWERS, seed=seed))
        assert isinstance(verdict, BlindVerdict)
        assert verdict.grades == {CHEAP: "wrong", STRONG: "correct"}
        label = verdict.oracle_label(Oracle(cheap=CHEAP, strong=STRONG))
        assert label is not None
        assert (label.cell, label.policy) == ("wrong/correct", "Complex_Query")
    # A verdict that does not grade the oracle's pair gives no label.
    assert verdict.oracle_label(Oracle(cheap=CHEAP, strong=THIRD)) is None


def test_unparseable_is_retried_once_with_the_reason_then_parsed() -> None:
    call = ContentJudge(replies=["Answer A is better."])
    verdict = run(BlindJudge(call=call, model="j").judge(QUERY, ANSWERS, seed=3))
    assert isinstance(verdict, BlindVerdict)
    assert verdict.attempts == 2
    assert verdict.grades == {CHEAP: "wrong", STRONG: "correct"}
    retry = call.sent[1]
    assert retry[0] == call.sent[0][0]
    assert retry[1] == {"role": "assistant", "content": "Answer A is better."}
    assert "line 1 is not '<answer>: <grade>'" in retry[2]["content"]


def test_unparseable_twice_is_dropped_with_its_reason_never_guessed() -> None:
    call = ContentJudge(replies=["A: correct\nB: excellent", "A: correct"])
    verdict = run(BlindJudge(call=call, model="j").judge(QUERY, ANSWERS, seed=1))
    assert isinstance(verdict, DroppedVerdict)
    assert verdict.attempts == 2
    assert len(call.sent) == 2
    assert verdict.reason == "unparseable verdict: no grade for answer(s) B"
    assert verdict.order == BlindJudge.shuffled(ANSWERS, 1)


def test_a_failing_call_is_dropped_with_its_reason() -> None:
    async def down(messages: Messages) -> str:
        raise ConnectionError("judge unreachable")

    verdict = run(BlindJudge(call=down, model="j").judge(QUERY, ANSWERS, seed=1))
    assert isinstance(verdict, DroppedVerdict)
    assert verdict.reason == "judge call failed: ConnectionError: judge unreachable"
    assert verdict.attempts == 1


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "the reply is empty"),
        ("A: correct\nC: wrong", "line 2 grades answer C, never shown"),
        ("A: correct\nA: wrong", "answer A is graded twice"),
        ("A: correct\nB: good", "line 2: 'good' is not one of correct, partial, wrong"),
        ("A: correct", "no grade for answer(s) B"),
        ("Verdict:\nA: correct\nB: wrong", "line 1 is not '<answer>: <grade>': 'Verdict:'"),
        ("A: correct, B: wrong", "line 1 is not '<answer>: <grade>': 'A: correct, B: wrong'"),
    ],
)
def test_parse_is_strict(reply: str, reason: str) -> None:
    with pytest.raises(UnparseableVerdictError) as caught:
        parse_verdict(reply, 2)
    assert str(caught.value) == reason


def test_parse_accepts_blank_lines_spaces_and_case() -> None:
    assert parse_verdict("\n  B : Wrong\n\nA:PARTIAL  \n", 2) == ("partial", "wrong")


@given(
    query=st.text(min_size=1).filter(str.strip),
    texts=st.lists(st.text(), min_size=2, max_size=5),
)
def test_parse_prompt_inverts_render_prompt(query: str, texts: list[str]) -> None:
    read = parse_prompt(render_prompt(query, texts))
    if "\n[End of Question]" in query:
        return  # a query quoting the marker is not guaranteed to read back
    assert read is not None
    assert read.query == query
    assert read.texts == tuple(texts)


def test_parse_prompt_refuses_other_text() -> None:
    prompt = render_prompt(QUERY, ["a", "b"])
    assert parse_prompt(QUERY) is None
    assert parse_prompt(prompt.replace("2 answers", "3 answers")) is None
    assert parse_prompt(prompt + "\n\n[Answer D]\nx\n[End of Answer D]") is None


def test_bad_requests_are_refused() -> None:
    judge = BlindJudge(call=ContentJudge(), model="j")
    with pytest.raises(JudgeError):
        run(judge.judge(QUERY, {CHEAP: "only one"}))
    with pytest.raises(JudgeError):
        run(judge.judge(" ", ANSWERS))
    with pytest.raises(JudgeError):
        run(judge.judge(QUERY, ANSWERS, order=[CHEAP, CHEAP]))


def test_order_bias_agreement() -> None:
    samples = [(QUERY, ANSWERS)] * 3 + [(QUERY, {CHEAP: "72", STRONG: "71"})]
    fair = run(measure_order_bias(BlindJudge(call=ContentJudge(), model="j"), samples))
    assert (fair.pairs, fair.judged, fair.agreed, fair.agreement) == (4, 4, 4, 1.0)

    async def first_wins(messages: Messages) -> str:
        return "A: correct\nB: wrong"

    biased = run(measure_order_bias(BlindJudge(call=first_wins, model="j"), samples))
    assert (biased.judged, biased.agreed, biased.agreement) == (4, 0, 0.0)
    assert (biased.first_favoured, biased.second_favoured) == (4, 0)

    flaky = ContentJudge(replies=["?", "?"])
    partial = run(measure_order_bias(BlindJudge(call=flaky, model="j"), samples))
    assert (partial.pairs, partial.judged, partial.agreed) == (4, 3, 3)
    assert partial.dropped_reasons == (
        "unparseable verdict: line 1 is not '<answer>: <grade>': '?'",
    )


def test_seeds_are_drawn_and_recorded_when_not_given() -> None:
    judge = BlindJudge(call=ContentJudge(), model="j", rng=random.Random(7))
    seeds = {run(judge.judge(QUERY, ANSWERS)).seed for _ in range(5)}
    assert None not in seeds
    assert len(seeds) == 5
