"""The offline upstream's logic: a validated request in, a ``Completion`` out (no HTTP here)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from routeiq.errors import ConfigError

from routeiq_upstream.core.answers import Answer, Answerer
from routeiq_upstream.core.catalog import ModelCatalog
from routeiq_upstream.core.faults import FaultPolicy
from routeiq_upstream.core.index import PromptIndex, normalise
from routeiq_upstream.core.judging import OfflineJudge
from routeiq_upstream.core.requests import ChatRequest
from routeiq_upstream.core.tokens import TokenCounter
from routeiq_upstream.errors import UpstreamError

_WORD = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Completion:
    """Everything the HTTP layer needs to answer one request.

    ``fault`` set means the upstream must answer with that error instead (after ``delay_s``,
    like a provider that times out before failing); the answer is still resolved so the error
    carries the same ``x-routeiq-*`` headers as a success would.
    """

    model: str
    answer: Answer
    text: str
    finish_reason: str
    usage: Usage
    delay_s: float
    fault: UpstreamError | None = None


def split_stream(text: str, words_per_chunk: int) -> list[str]:
    """``text`` cut into chunks of ``words_per_chunk`` words; joined, they give ``text`` back."""
    words = _WORD.findall(text)
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


class OfflineUpstream:
    """Answers chat requests from the prompt index, with the configured faults and latency."""

    def __init__(
        self,
        *,
        index: PromptIndex,
        catalog: ModelCatalog,
        counter: TokenCounter,
        faults: FaultPolicy | None = None,
        stream_chunk_words: int = 4,
        judge: OfflineJudge | None = None,
    ) -> None:
        if judge is not None and judge.model in {*catalog.models, *catalog.aliases}:
            raise ConfigError(f"the judge model {judge.model!r} is also a served model or alias")
        self.index = index
        self.catalog = catalog
        self.counter = counter
        self.faults = faults or FaultPolicy()
        self.stream_chunk_words = stream_chunk_words
        self._answerer = Answerer(index=index)
        self.judge = judge

    def complete(self, request: ChatRequest) -> Completion:
        """Resolve the model (404 if not served), look the prompt up and build the answer."""
        key = normalise(request.prompt)
        if self.judge is not None and request.model == self.judge.model:
            # The judge sits beside the catalogue: it answers from every dataset's data.
            model, answer = self.judge.model, self.judge.answer(request.messages)
        else:
            model = self.catalog.resolve(request.model)
            answer = self._answerer.answer(key, model)
        text, finish_reason = answer.text, "stop"
        completion_tokens = self.counter.count(text)
        if request.max_tokens is not None and completion_tokens > request.max_tokens:
            text = self.counter.truncate(text, request.max_tokens)
            completion_tokens, finish_reason = request.max_tokens, "length"
        usage = Usage(self.counter.count_messages(request.messages), completion_tokens)
        return Completion(
            model=model,
            answer=answer,
            text=text,
            finish_reason=finish_reason,
            usage=usage,
            delay_s=self.faults.delay_s(model),
            fault=self.faults.injected_error(model, key),
        )

    def chunks(self, text: str) -> list[str]:
        """The streamed pieces of an answer ``text``."""
        return split_stream(text, self.stream_chunk_words)

    def describe(self) -> dict[str, object]:
        """What is served, for /health/ready and the start-up log."""
        return {
            "prompts": len(self.index),
            "models": list(self.catalog.models),
            "aliases": dict(self.catalog.aliases),
            "datasets": [
                {
                    "name": d.name,
                    "prompts": d.prompts,
                    "models": list(d.models),
                    "recorded_answers": d.answers,
                }
                for d in self.index.datasets
            ],
            "tokenizer": self.counter.name,
            "judge": self.judge.model if self.judge is not None else None,
        }
