"""Deterministic token counts for ``usage``: cl100k_base (tiktoken) or an approximation.

Which encoder is loaded, and from where, is ``routeiq_upstream.cl100k``'s job (it reads files
and tiktoken's environment); this module only counts. ``ApproxTokenizer`` counts ceil(UTF-8
bytes / 4), OpenAI's own rule of thumb for English text.

Chat prompts are counted as OpenAI's cookbook does for GPT-4 models: 3 tokens per message, the
role and content tokens, 1 more for a ``name``, and 3 to prime the reply.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


class Encoder(Protocol):
    """What the counter needs from a tokenizer."""

    name: str

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""

    def truncate(self, text: str, limit: int) -> str:
        """The longest prefix of ``text`` of at most ``limit`` tokens."""


class TiktokenEncoder:
    """cl100k_base through tiktoken."""

    def __init__(self, encoding: Any) -> None:
        self._encoding = encoding
        self.name = str(encoding.name)

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def truncate(self, text: str, limit: int) -> str:
        tokens = self._encoding.encode_ordinary(text)
        if len(tokens) <= limit:
            return text
        # A cut can fall inside a multi-byte character; drop the broken tail.
        data: bytes = self._encoding.decode_bytes(tokens[:limit])
        return data.decode("utf-8", errors="ignore")


class ApproxTokenizer:
    """ceil(UTF-8 bytes / 4): no vocabulary needed, deterministic, roughly right for English."""

    name = "approx-bytes/4"

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / 4)

    def truncate(self, text: str, limit: int) -> str:
        data = text.encode("utf-8")
        if len(data) <= 4 * limit:
            return text
        return data[: 4 * limit].decode("utf-8", errors="ignore")


class TokenCounter:
    """Token counts with the recorded texts pre-counted and a small LRU for everything else.

    ``warm`` pins counts for a known set of texts (the datasets' prompts and answers, counted
    once at start); other texts go through a bounded LRU, skipped for very long texts, so
    arbitrary traffic cannot grow memory without limit. Used from the event loop's thread only.
    """

    def __init__(
        self, *, encoder: Encoder, lru_size: int = 4096, lru_max_chars: int = 16_384
    ) -> None:
        self.encoder = encoder
        self._pinned: dict[str, int] = {}
        self._lru: OrderedDict[str, int] = OrderedDict()
        self._lru_size = lru_size
        self._lru_max_chars = lru_max_chars

    @property
    def name(self) -> str:
        return self.encoder.name

    def warm(self, texts: Iterable[str]) -> int:
        """Count and pin ``texts``; returns how many were new."""
        added = 0
        for text in texts:
            if text not in self._pinned:
                self._pinned[text] = self.encoder.count(text)
                added += 1
        return added

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        pinned = self._pinned.get(text)
        if pinned is not None:
            return pinned
        if len(text) > self._lru_max_chars:
            return self.encoder.count(text)
        cached = self._lru.get(text)
        if cached is not None:
            self._lru.move_to_end(text)
            return cached
        value = self.encoder.count(text)
        self._lru[text] = value
        if len(self._lru) > self._lru_size:
            self._lru.popitem(last=False)
        return value

    def truncate(self, text: str, limit: int) -> str:
        """The longest prefix of ``text`` within ``limit`` tokens."""
        return self.encoder.truncate(text, limit)

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Prompt tokens of a chat request (OpenAI's cookbook rule for GPT-4 models)."""
        total = REPLY_PRIMING_TOKENS
        for message in messages:
            total += TOKENS_PER_MESSAGE
            total += self.count(str(message.get("role", "")))
            content = message.get("content")
            if isinstance(content, list):
                # Each text part is encoded on its own, as OpenAI's and litellm's counters do.
                total += sum(self.count(text) for text in text_parts(content))
            else:
                total += self.count(message_text(content))
            name = message.get("name")
            if isinstance(name, str):
                total += TOKENS_PER_NAME + self.count(name)
        return total


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the ``text`` parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text_parts(content))
    return ""


def text_parts(content: Sequence[Any]) -> list[str]:
    """The ``text`` of each text part of a list-of-parts content (images and audio skipped)."""
    return [
        part["text"]
        for part in content
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
