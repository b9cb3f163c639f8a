"""Query keys: a keyed hash of the routed query text, so a decision can be joined to the text
without the text ever reaching a topic, a trace or a shard.

Routers that read text (``causallm``, ``bert``) train on (text, label) pairs. The labels come
from production (shards: grades, oracle cells); the texts stay with the operator (a prompt
store, a benchmark file). The gateway puts ``query_key(key, text)`` in each decision; the
trainer computes the same for each text of the operator's source and joins the two.

HMAC-SHA256 under a secret the gateways and the trainer share (``ROUTEIQ_*_QUERY_KEY``): a
plain hash of a short prompt could be reversed by hashing guesses; without the key it cannot.
The text is hashed as the gateway routes it (the last user message), NFC-normalised, so the
same prompt typed in a composed or decomposed form gets one key.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable, Sequence

# Shorter keys than this are refused: an HMAC key is as guessable as it is short.
MIN_KEY_BYTES = 16


def query_key(key: bytes, text: str) -> str:
    """The query key of ``text`` under ``key`` (64 hex characters)."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a query key needs at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    normalised = unicodedata.normalize("NFC", text)
    return hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


def keyed_texts(key: bytes, texts: Iterable[str]) -> dict[str, str]:
    """Query key → text for an operator's texts (the first of two texts with one key wins:
    they normalise to the same text)."""
    out: dict[str, str] = {}
    for text in texts:
        out.setdefault(query_key(key, text), text)
    return out


def join_texts(key: bytes, keys: Sequence[str | None], texts: Iterable[str]) -> list[str | None]:
    """For each logged query key, the text of ``texts`` with that key (None where no text has
    it, or the row has no key)."""
    index = keyed_texts(key, texts)
    return [index.get(k) if k else None for k in keys]
