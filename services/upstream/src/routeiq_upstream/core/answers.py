"""What the upstream answers for a (prompt, model): recorded text, a scored stand-in, or a
deterministic unrecorded answer.

* recorded: the dataset holds the model's answer text (GSM8K, MT-Bench) → that text, verbatim.
* scored: the dataset holds the model's quality but no text (LLMRouter) → a fixed sentence that
  says so and carries the recorded quality.
* unrecorded: the prompt is unknown, or known but not for this model → text derived from a
  hash of (model, prompt), marked as not recorded. Same prompt and model, same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from routeiq.routing.datasets import prompt_id

from routeiq_upstream.core.index import PromptIndex, Record

OFFLINE_TAG = "[RouteIQ offline upstream]"
NO_DATASET = "none"

# 64 plain words, so every byte of the hash picks one (6 bits each, no modulo bias).
_WORDS = (
    "amber",
    "basin",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "island",
    "juniper",
    "kelp",
    "lantern",
    "meadow",
    "nectar",
    "orchard",
    "pebble",
    "quartz",
    "river",
    "saffron",
    "tundra",
    "umber",
    "valley",
    "willow",
    "yarrow",
    "zephyr",
    "anchor",
    "beacon",
    "canyon",
    "dune",
    "estuary",
    "fern",
    "glacier",
    "heath",
    "inlet",
    "jade",
    "knoll",
    "lagoon",
    "marsh",
    "nimbus",
    "oasis",
    "prairie",
    "quarry",
    "reef",
    "summit",
    "thicket",
    "upland",
    "vista",
    "wharf",
    "atoll",
    "bluff",
    "cove",
    "drift",
    "eddy",
    "grove",
    "hollow",
    "isle",
    "jetty",
    "ledge",
    "mesa",
    "ridge",
    "shoal",
    "brook",
    "crest",
    "fen",
)
assert len(_WORDS) == 64


class AnswerKind(StrEnum):
    RECORDED = "recorded"
    SCORED = "scored"
    UNRECORDED = "unrecorded"
    JUDGED = "judged"  # the offline judge's verdict on recorded answers


@dataclass(frozen=True, slots=True)
class Answer:
    """The text to send and what the data says about it (for headers and metrics)."""

    text: str
    kind: AnswerKind
    prompt_id: str
    dataset: str
    score: float | None

    @property
    def known(self) -> bool:
        """The data recorded this model on this prompt (an answer text or a score)."""
        return self.kind is not AnswerKind.UNRECORDED


def scored_text(*, model: str, record: Record, score: float) -> str:
    """The stand-in for a model whose quality, but no answer, was recorded."""
    return (
        f"{OFFLINE_TAG} Offline answer: the benchmark data recorded no answer text of {model} "
        f"for this prompt ({record.dataset}, {record.prompt_id}), only its quality. "
        f"Recorded quality of {model} on this prompt: {score:.4f} (0 = wrong, 1 = best)."
    )


def unrecorded_text(*, model: str, key: str, prompt_known: bool) -> str:
    """A deterministic answer for a (model, prompt) the data has no record of.

    The words come from SHAKE-256 of (model, prompt), and their number (12-75) too, so lengths
    and token counts vary from prompt to prompt like real answers while staying reproducible.
    """
    digest = hashlib.shake_256(f"{model}\x00{key}".encode()).digest(80)
    n_words = 12 + digest[0] % 64
    words = " ".join(_WORDS[b & 63] for b in digest[1 : 1 + n_words])
    why = (
        f"this prompt is in the benchmark data, but not with an answer or score of {model}"
        if prompt_known
        else "this prompt is not in the recorded benchmark data"
    )
    return (
        f"{OFFLINE_TAG} NOT RECORDED: {why}. This deterministic placeholder is derived from "
        f"hash {digest[:8].hex()} of the model and prompt and means nothing: {words}."
    )


def unknown_prompt_id(key: str) -> str:
    """The id of a prompt outside the data (a hash of its normalised text)."""
    return f"unrecorded-{prompt_id(key)}"


class Answerer:
    """Looks a (normalised prompt, model) up in the index and says what to answer."""

    def __init__(self, *, index: PromptIndex, cache_size: int = 65_536) -> None:
        self.index = index
        # Scored stand-ins are a pure function of (record, model): build each once.
        self._scored = lru_cache(maxsize=cache_size)(self._build_scored)

    def answer(self, key: str, model: str) -> Answer:
        """The answer for normalised prompt ``key`` from canonical model ``model``."""
        record, first = self.index.find(key, model)
        if record is not None:
            score = record.scores.get(model)
            text = record.responses.get(model)
            if text:
                return Answer(text, AnswerKind.RECORDED, record.prompt_id, record.dataset, score)
            return self._scored(record, model)
        if first is not None:
            text = unrecorded_text(model=model, key=key, prompt_known=True)
            return Answer(text, AnswerKind.UNRECORDED, first.prompt_id, first.dataset, None)
        text = unrecorded_text(model=model, key=key, prompt_known=False)
        return Answer(text, AnswerKind.UNRECORDED, unknown_prompt_id(key), NO_DATASET, None)

    @staticmethod
    def _build_scored(record: Record, model: str) -> Answer:
        score = record.scores[model]
        return Answer(
            scored_text(model=model, record=record, score=score),
            AnswerKind.SCORED,
            record.prompt_id,
            record.dataset,
            score,
        )
