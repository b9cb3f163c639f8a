"""Query keys: the same text gets the same key under one secret, another under another, and
the key says nothing of the text without the secret."""

from __future__ import annotations

import pytest
from routeiq.routing.querykey import join_texts, keyed_texts, query_key

KEY = b"0123456789abcdef0123456789abcdef"


def test_a_key_is_a_keyed_hash_of_the_normalised_text() -> None:
    key = query_key(KEY, "Café au lait?")
    assert len(key) == 64
    assert int(key, 16) >= 0
    # Composed and decomposed forms of one text are one query.
    assert query_key(KEY, "Cafe\u0301 au lait?") == key
    assert query_key(KEY, "Café au lait? ") != key  # but nothing else is normalised away
    assert query_key(b"another key of 32 bytes........", "Café au lait?") != key


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        query_key(b"short", "text")


def test_keyed_texts_indexes_a_prompt_store_by_key() -> None:
    texts = ["What is 2+2?", "Name a prime.", "What is 2+2?"]
    index = keyed_texts(KEY, texts)
    assert len(index) == 2
    assert index[query_key(KEY, "Name a prime.")] == "Name a prime."


def test_logged_keys_join_to_texts_and_unknown_or_missing_keys_to_none() -> None:
    texts = ["What is 2+2?", "Name a prime."]
    logged = [query_key(KEY, "Name a prime."), None, query_key(KEY, "not in the store"), ""]
    assert join_texts(KEY, logged, texts) == ["Name a prime.", None, None, None]
