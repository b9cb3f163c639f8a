"""The blind judge: a judge model grades two or more answers to one query without knowing
which model wrote which.

The answers are shown in an order drawn from a seeded RNG (the seed and the order are recorded
on the verdict) and labelled only ``Answer A``, ``Answer B``, ...; the prompt never names a
model. The judge must reply with exactly one line per answer, ``<label>: <grade>``, the grade
one of the oracle's ``correct`` / ``partial`` / ``wrong``. Parsing is strict: any other line,
a label that was not shown, an unknown grade, an answer graded twice or not at all makes the
reply unparseable. An unparseable reply is answered once with a correction turn (the reason,
the format again); a second unparseable reply, or a failed call, drops the verdict with its
reason. Nothing is ever guessed. Grades are mapped back to the models through the recorded
order.

Order bias is measured by judging each pair in both orders (``measure_order_bias``).
``build_prompt`` and ``parse_prompt`` are each other's inverse, so a test double or the
offline upstream can read the real prompt instead of a copy of its format.
"""

from __future__ import annotations

import importlib
import random
import re
import string
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routeiq.errors import ConfigError, RouteIQError
from routeiq.routing.oracle import GRADES, Grade, Oracle, OracleLabel

LABELS = string.ascii_uppercase  # at most 26 answers per verdict
GRADE_RANK: dict[Grade, int] = {"wrong": 0, "partial": 1, "correct": 2}
# A grade as a quality in [0, 1] (a verdict's Feedback score); GradeScale's defaults map back.
GRADE_QUALITY: dict[Grade, float] = {"wrong": 0.0, "partial": 0.5, "correct": 1.0}

_INSTRUCTIONS = (
    "You are an impartial judge. Below are a question and {n} answers to it, shown in random "
    "order; who wrote them is hidden. Grade each answer on its own merits:\n"
    "- correct: fully correct and complete;\n"
    "- partial: partly correct, incomplete or with minor errors;\n"
    "- wrong: incorrect, irrelevant or missing.\n"
    "Reply with exactly {n} lines and nothing else, one per answer, in this form:\n"
    "{form}"
)
_QUESTION = "[Question]\n{query}\n[End of Question]"
_ANSWER = "[Answer {label}]\n{text}\n[End of Answer {label}]"
_VERDICT_LINE = re.compile(r"([A-Z])\s*:\s*([A-Za-z]+)")


class JudgeError(RouteIQError):
    """A judge request that cannot be built (too few answers, an empty query)."""


class UnparseableVerdictError(JudgeError):
    """The judge's reply is not the strict format; the message says why."""


def instructions(n: int) -> str:
    """The judge's instructions for ``n`` answers (the head of every judge prompt)."""
    form = "\n".join(f"{label}: correct|partial|wrong" for label in LABELS[:n])
    return _INSTRUCTIONS.format(n=n, form=form)


def render_prompt(query: str, texts: Sequence[str]) -> str:
    """The judge prompt for ``query`` and the answer ``texts`` in the order they are shown."""
    if not query.strip():
        raise JudgeError("the judge needs a non-empty query")
    if not 2 <= len(texts) <= len(LABELS):
        raise JudgeError(f"the judge grades 2 to {len(LABELS)} answers, got {len(texts)}")
    sections = [instructions(len(texts)), _QUESTION.format(query=query)]
    sections += [_ANSWER.format(label=LABELS[i], text=text) for i, text in enumerate(texts)]
    return "\n\n".join(sections)


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt read back: the query and the answer texts in the order shown."""

    query: str
    texts: tuple[str, ...]


def parse_prompt(prompt: str) -> JudgePrompt | None:
    """The query and answers of a prompt ``render_prompt`` wrote; None for any other text.

    Answers are cut at their own end marker, so an answer quoting another answer's markers
    still reads back whole; the instructions must match the number of answers exactly.
    """
    head, sep, rest = prompt.partition("\n\n[Question]\n")
    if not sep:
        return None
    query, sep, rest = rest.partition("\n[End of Question]")
    if not sep:
        return None
    texts: list[str] = []
    while rest:
        label = LABELS[len(texts)] if len(texts) < len(LABELS) else None
        opening = f"\n\n[Answer {label}]\n"
        closing = f"\n[End of Answer {label}]"
        if label is None or not rest.startswith(opening):
            return None
        body = rest[len(opening) :]
        # The next section (or the end) follows the closing marker: take the last closing
        # marker that is followed by one, so a quoted marker inside the text is kept.
        cut = _closing_at(body, closing, LABELS[len(texts) + 1 : len(texts) + 2])
        if cut < 0:
            return None
        texts.append(body[:cut])
        rest = body[cut + len(closing) :]
    if len(texts) < 2 or head != instructions(len(texts)):
        return None
    return JudgePrompt(query, tuple(texts))


def _closing_at(body: str, closing: str, next_label: str) -> int:
    """Where ``closing`` ends this answer: right before the end of the prompt or the next
    answer's opening marker; -1 when nowhere."""
    follower = f"\n\n[Answer {next_label}]\n" if next_label else None
    at = body.rfind(closing)
    while at >= 0:
        after = body[at + len(closing) :]
        if not after or (follower is not None and after.startswith(follower)):
            return at
        at = body.rfind(closing, 0, at)
    return -1


def render_verdict(grades: Sequence[Grade]) -> str:
    """The reply in the strict format for grades given in the order the answers were shown."""
    return "\n".join(f"{LABELS[i]}: {grade}" for i, grade in enumerate(grades))


def parse_verdict(reply: str, n: int) -> tuple[Grade, ...]:
    """The grades of answers A.. in order from a strict reply; ``UnparseableVerdictError``
    with the reason otherwise. Blank lines and surrounding spaces are ignored, grades are
    case-insensitive; anything else (prose, a label not shown, a repeat, a gap) is refused."""
    shown = LABELS[:n]
    found: dict[str, Grade] = {}
    lines = [line.strip() for line in reply.splitlines() if line.strip()]
    if not lines:
        raise UnparseableVerdictError("the reply is empty")
    for number, line in enumerate(lines, 1):
        match = _VERDICT_LINE.fullmatch(line)
        if match is None:
            raise UnparseableVerdictError(
                f"line {number} is not '<answer>: <grade>': {line[:200]!r}"
            )
        label, word = match[1], match[2].lower()
        if label not in shown:
            raise UnparseableVerdictError(f"line {number} grades answer {label}, never shown")
        if label in found:
            raise UnparseableVerdictError(f"answer {label} is graded twice")
        grade = next((g for g in GRADES if g == word), None)
        if grade is None:
            raise UnparseableVerdictError(
                f"line {number}: {match[2]!r} is not one of {', '.join(GRADES)}"
            )
        found[label] = grade
    missing = [label for label in shown if label not in found]
    if missing:
        raise UnparseableVerdictError(f"no grade for answer(s) {', '.join(missing)}")
    return tuple(found[label] for label in shown)


Messages = list[dict[str, str]]
# The seam to the judge model: chat messages in, the reply's text out.
JudgeCall = Callable[[Messages], Awaitable[str]]


def litellm_call(model: str, **params: Any) -> JudgeCall:
    """A ``JudgeCall`` through ``litellm.acompletion`` (any provider; ``params`` such as
    ``api_base``, ``api_key``). litellm is imported here: the gateway and the CLI install it,
    the library does not depend on it."""
    try:
        litellm = importlib.import_module("litellm")
    except ImportError as exc:
        raise ConfigError("the LiteLLM judge needs litellm installed") from exc

    async def call(messages: Messages) -> str:
        response = await litellm.acompletion(
            model=model, messages=messages, temperature=0, **params
        )
        return str(response.choices[0].message.content or "")

    return call


@dataclass(frozen=True)
class BlindVerdict:
    """A parsed verdict: grade per model, and how the answers were shown."""

    judge_model: str
    order: tuple[str, ...]  # the model behind Answer A, B, ...
    seed: int | None  # None when the order was given, not drawn
    grades: dict[str, Grade]
    attempts: int

    def oracle_label(self, oracle: Oracle) -> OracleLabel | None:
        """The oracle cell and policy, when both of ``oracle``'s models were graded."""
        cheap, strong = self.grades.get(oracle.cheap), self.grades.get(oracle.strong)
        if cheap is None or strong is None:
            return None
        return OracleLabel(cheap, strong, oracle.matrix.policy(cheap, strong))

    def feedback_fields(self, oracle: Oracle | None = None) -> dict[str, Any]:
        """The verdict's fields of a ``Feedback`` record (contract v2): every grade, the
        order and seed the judge saw, and ``oracle``'s cell and policy when it applies."""
        label = self.oracle_label(oracle) if oracle is not None else None
        return {
            "judge_model": self.judge_model,
            "verdict_grades": dict(self.grades),
            "verdict_order": list(self.order),
            "verdict_seed": self.seed,
            "oracle_cell": label.cell if label else None,
            "policy": label.policy if label else None,
        }


@dataclass(frozen=True)
class DroppedVerdict:
    """A verdict that could not be had, and why (the last reply's problem or the call's)."""

    judge_model: str
    order: tuple[str, ...]
    seed: int | None
    reason: str
    attempts: int


class BlindJudge:
    """Asks ``call`` (the judge ``model``) for blind verdicts.

    ``rng`` draws a seed per verdict when none is given; each verdict's order comes from its
    own ``random.Random(seed)`` over the model names sorted, so the seed alone reproduces it.
    """

    def __init__(
        self,
        *,
        call: JudgeCall,
        model: str,
        rng: random.Random | None = None,
        max_attempts: int = 2,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {max_attempts}")
        self.call = call
        self.model = model
        # Not security-sensitive: the seed only decides the order answers are shown in.
        self.rng = rng or random.Random()  # noqa: S311
        self.max_attempts = max_attempts

    @staticmethod
    def shuffled(models: Iterable[str], seed: int) -> tuple[str, ...]:
        """The order ``seed`` gives ``models`` (sorted first, so it ignores the input order)."""
        order = sorted(models)
        random.Random(seed).shuffle(order)  # noqa: S311 - a display order, not a secret
        return tuple(order)

    async def judge(
        self,
        query: str,
        answers: Mapping[str, str],
        *,
        seed: int | None = None,
        order: Sequence[str] | None = None,
    ) -> BlindVerdict | DroppedVerdict:
        """Grade ``answers`` (model → text) to ``query``. ``order`` forces the display order
        (order-bias checks); otherwise it is drawn from ``seed`` (a fresh one when None)."""
        if order is not None:
            if sorted(order) != sorted(answers):
                raise JudgeError(f"order {list(order)} must list each of {sorted(answers)} once")
            shown, seed = tuple(order), None
        else:
            seed = self.rng.getrandbits(63) if seed is None else seed
            shown = self.shuffled(answers, seed)
        prompt = render_prompt(query, [answers[m] for m in shown])
        messages: Messages = [{"role": "user", "content": prompt}]
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                reply = await self.call(messages)
            except Exception as exc:  # noqa: BLE001 - any provider's failure drops the verdict
                reason = f"judge call failed: {type(exc).__name__}: {exc}"[:500]
                return DroppedVerdict(self.model, shown, seed, reason, attempt)
            try:
                grades = parse_verdict(reply, len(shown))
            except UnparseableVerdictError as exc:
                reason = f"unparseable verdict: {exc}"
                messages = [*messages[:1], *_correction(reply, str(exc), len(shown))]
                continue
            by_model = dict(zip(shown, grades, strict=True))
            return BlindVerdict(self.model, shown, seed, by_model, attempt)
        return DroppedVerdict(self.model, shown, seed, reason, self.max_attempts)


def _correction(reply: str, problem: str, n: int) -> Messages:
    """The turn that answers an unparseable reply: what was wrong and the format again."""
    form = "\n".join(f"{label}: correct|partial|wrong" for label in LABELS[:n])
    return [
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": f"Your reply could not be read ({problem}). Reply with exactly {n} "
            f"lines and nothing else:\n{form}",
        },
    ]


@dataclass(frozen=True)
class OrderBias:
    """Pairs judged in both orders: how often the two verdicts agree.

    ``first_favoured`` / ``second_favoured`` count disagreements where the answer shown in
    that position got the better grade both times (position, not content, decided)."""

    pairs: int
    judged: int  # pairs with both verdicts parsed
    agreed: int
    first_favoured: int
    second_favoured: int
    dropped_reasons: tuple[str, ...]

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.judged if self.judged else None


async def measure_order_bias(
    judge: BlindJudge, samples: Iterable[tuple[str, Mapping[str, str]]]
) -> OrderBias:
    """Judge each (query, two answers) in both orders and count agreement."""
    pairs = judged = agreed = first = second = 0
    dropped: list[str] = []
    for query, answers in samples:
        if len(answers) != 2:
            raise JudgeError(f"order bias is measured on pairs, got {len(answers)} answers")
        pairs += 1
        x, y = sorted(answers)
        forward = await judge.judge(query, answers, order=(x, y))
        backward = await judge.judge(query, answers, order=(y, x))
        if isinstance(forward, DroppedVerdict) or isinstance(backward, DroppedVerdict):
            dropped.extend(v.reason for v in (forward, backward) if isinstance(v, DroppedVerdict))
            continue
        judged += 1
        if forward.grades == backward.grades:
            agreed += 1
            continue
        # Positive: the answer shown first was graded better.
        lead_forward = GRADE_RANK[forward.grades[x]] - GRADE_RANK[forward.grades[y]]
        lead_backward = GRADE_RANK[backward.grades[y]] - GRADE_RANK[backward.grades[x]]
        first += lead_forward > 0 and lead_backward > 0
        second += lead_forward < 0 and lead_backward < 0
    return OrderBias(pairs, judged, agreed, first, second, tuple(dropped))
