"""The offline judge: answers the blind judge's real prompt from the recorded correctness data.

It reads the prompt with ``routeiq.routing.judge.parse_prompt`` (so it follows the judge's
format, never a copy of it), finds the question in the benchmark data, matches each answer's
text to the recorded answer (or the upstream's own scored stand-in) it equals, and grades it
from that model's recorded score through the oracle's ``GradeScale``. It replies in the judge's
strict format. When it cannot grade honestly (no judge prompt, an unknown question, an answer
that is no recorded answer or matches answers with different grades) it says so in one line
of prose, which the judge refuses as unparseable: such a verdict is dropped, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from routeiq.routing.judge import LABELS, JudgePrompt, parse_prompt, render_verdict
from routeiq.routing.oracle import Grade, GradeScale

from routeiq_upstream.core.answers import (
    NO_DATASET,
    OFFLINE_TAG,
    Answer,
    AnswerKind,
    scored_text,
    unknown_prompt_id,
)
from routeiq_upstream.core.index import PromptIndex, Record, normalise
from routeiq_upstream.core.tokens import message_text

DEFAULT_JUDGE_MODEL = "routeiq-judge"


class OfflineJudge:
    """Grades the answers of a judge prompt by the recorded scores of the answers they equal."""

    def __init__(
        self, *, index: PromptIndex, model: str = DEFAULT_JUDGE_MODEL, scale: GradeScale
    ) -> None:
        self.index = index
        self.model = model
        self.scale = scale

    def answer(self, messages: Sequence[Mapping[str, Any]]) -> Answer:
        """The verdict for the first user message that is a judge prompt (a retry carries
        the prompt first, then the judge's reply and a correction)."""
        prompt = _judge_prompt(messages)
        if prompt is None:
            text = (
                f"{OFFLINE_TAG} cannot grade: {self.model} answers only the blind judge's "
                "prompt (routeiq.routing.judge), and this request holds none."
            )
            return Answer(text, AnswerKind.UNRECORDED, unknown_prompt_id(""), NO_DATASET, None)
        key = normalise(prompt.query)
        records = self.index.lookup(key)
        if not records:
            text = (
                f"{OFFLINE_TAG} cannot grade: the question is not in the recorded benchmark data."
            )
            return Answer(text, AnswerKind.UNRECORDED, unknown_prompt_id(key), NO_DATASET, None)
        grades: list[Grade] = []
        for label, answer_text in zip(LABELS, prompt.texts, strict=False):
            grade, why = self.grade(records, answer_text)
            if grade is None:
                text = f"{OFFLINE_TAG} cannot grade answer {label}: {why}."
                first = records[0]
                return Answer(text, AnswerKind.UNRECORDED, first.prompt_id, first.dataset, None)
            grades.append(grade)
        first = records[0]
        return Answer(
            render_verdict(grades), AnswerKind.JUDGED, first.prompt_id, first.dataset, None
        )

    def grade(self, records: Sequence[Record], text: str) -> tuple[Grade | None, str]:
        """The grade of ``text`` as an answer to the question of ``records`` (or None and
        why). Texts are compared whitespace-normalised, so a client that strips a reply's
        leading space still matches."""
        wanted = normalise(text)
        matched: dict[str, Grade] = {}
        for record in records:
            for model, score in record.scores.items():
                recorded = record.responses.get(model)
                if recorded is None:
                    recorded = scored_text(model=model, record=record, score=score)
                if normalise(recorded) == wanted:
                    matched[model] = self.scale.grade(score)
        if not matched:
            return None, "its text is not a recorded answer to this question"
        distinct = sorted(set(matched.values()))
        if len(distinct) > 1:
            return None, f"its text equals recorded answers graded {', '.join(distinct)}"
        return distinct[0], ""


def _judge_prompt(messages: Sequence[Mapping[str, Any]]) -> JudgePrompt | None:
    for message in messages:
        if message.get("role") == "user":
            prompt = parse_prompt(message_text(message.get("content")))
            if prompt is not None:
                return prompt
    return None
