"""Cheap text features of a query, computed without a model, for policy rules and telemetry.

The learned routers use the MiniLM embedding (``embedding.py``); these features let a policy
send code or maths to a capable model, apply length rules and estimate a request's cost
before it is made. None of them can be inverted to recover the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+[:(]|\bfunction\s+\w+\s*\(|#include\s*<|\bimport \w+|"
    r"\bSELECT\b.+\bFROM\b|=>|\bconsole\.log\b|\bpublic static\b|\b(?:python|javascript|"
    r"typescript|java|rust|golang|c\+\+|sql|regex|bash|code|function|compile|debug)\b",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\d+\s*[-+*/^=×÷]\s*\d+|\b(?:solve|equation|integral|derivative|probability|percent|"
    r"sum|product|how many|how much|calculate|compute|prove|theorem|matrix|algebra)\b|[∑∫√π]",
    re.IGNORECASE,
)

# A rough BPE rate for English: one token per four characters. Used only to estimate cost
# before the call; the outcome records the upstream's real token counts.
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class TextFeatures:
    chars: int
    words: int
    lines: int
    digits: int
    has_code: bool
    has_math: bool
    questions: int

    @property
    def est_tokens(self) -> int:
        return max(1, round(self.chars / CHARS_PER_TOKEN))


def text_features(text: str) -> TextFeatures:
    """Features of one query text."""
    return TextFeatures(
        chars=len(text),
        words=len(text.split()),
        lines=text.count("\n") + 1,
        digits=sum(ch.isdigit() for ch in text),
        has_code=bool(_CODE.search(text)),
        has_math=bool(_MATH.search(text)),
        questions=text.count("?"),
    )


def matches_keywords(text: str, keywords: tuple[str, ...]) -> bool:
    """Case-insensitive whole-word-ish match of any keyword (a keyword may contain spaces)."""
    lowered = text.lower()
    return any(k.lower() in lowered for k in keywords)
