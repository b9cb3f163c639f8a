"""Deterministic token counts for ``usage``: tiktoken's cl100k_base offline, or an approximation.

cl100k_base is GPT-4's encoding. tiktoken downloads it on first use unless its cache folder
(``TIKTOKEN_CACHE_DIR``) already holds it under the sha1 of its URL; litellm ships exactly such
a folder (``litellm/litellm_core_utils/tokenizers``). We look for the file there, check its
sha256 against tiktoken's published hash, and only then let tiktoken load it, so loading never
touches the network. Without it, ``ApproxTokenizer`` counts ceil(UTF-8 bytes / 4), OpenAI's own
rule of thumb for English text.

Chat prompts are counted as OpenAI's cookbook does for GPT-4 models: 3 tokens per message, the
role and content tokens, 1 more for a ``name``, and 3 to prime the reply.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from routeiq.errors import ConfigError

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
# From tiktoken_ext.openai_public.cl100k_base (the hash tiktoken itself checks).
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_CACHE_KEY = hashlib.sha1(CL100K_URL.encode()).hexdigest()  # noqa: S324 - tiktoken's key

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


def litellm_tokenizer_dir() -> Path | None:
    """litellm's bundled tiktoken cache folder, found without importing litellm (slow)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


_TIKTOKEN_ENV_LOCK = threading.Lock()


def load_cl100k(cache_dir: Path) -> TiktokenEncoder:
    """cl100k_base from ``cache_dir``; ConfigError if the file is absent or not the right one."""
    path = cache_dir / CL100K_CACHE_KEY
    if not path.is_file():
        raise ConfigError(f"no cl100k_base file in {cache_dir} (expected {path.name})")
    if hashlib.sha256(path.read_bytes()).hexdigest() != CL100K_SHA256:
        raise ConfigError(f"{path} is not tiktoken's cl100k_base file (sha256 differs)")
    try:
        import tiktoken
    except ImportError as exc:
        raise ConfigError("tiktoken is not installed") from exc
    # tiktoken reads its cache folder from the environment only; the file is known to be there
    # and valid, so this cannot reach the network. Restore the variable for everyone else.
    with _TIKTOKEN_ENV_LOCK:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
        try:
            encoding = tiktoken.get_encoding("cl100k_base")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"tiktoken could not load cl100k_base from {cache_dir}") from exc
        finally:
            if previous is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous
    return TiktokenEncoder(encoding)


def load_encoder(mode: str, cache_dirs: Sequence[Path]) -> tuple[Encoder, list[str]]:
    """The encoder for ``mode`` (auto / cl100k_base / approx) and why others were not used.

    ``cl100k_base`` refuses to start (ConfigError) when no folder holds the file; ``auto``
    falls back to the approximation and returns the reasons so the caller can log them.
    """
    if mode == "approx":
        return ApproxTokenizer(), []
    problems: list[str] = []
    for folder in cache_dirs:
        try:
            return load_cl100k(folder), problems
        except ConfigError as exc:
            problems.append(str(exc))
    if not cache_dirs:
        problems.append("no tiktoken cache folder (set tiktoken_cache_dir or install litellm)")
    if mode == "cl100k_base":
        raise ConfigError(
            "tokenizer=cl100k_base but it cannot load offline: " + "; ".join(problems)
        )
    return ApproxTokenizer(), problems


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
