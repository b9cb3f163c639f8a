"""Token counts: cl100k_base loaded offline from litellm's bundled file, the approximation,
the refusals, and the chat-prompt rule."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.errors import ConfigError
from routeiq.routing.datasets import RoutingDataset
from routeiq_upstream.cl100k import (
    CL100K_CACHE_KEY,
    litellm_tokenizer_dir,
    load_cl100k,
    load_encoder,
)
from routeiq_upstream.core.tokens import ApproxTokenizer, TokenCounter


def test_cl100k_matches_tiktoken_reading_the_same_folder(
    cl100k: Any, benchmark_tables: dict[str, RoutingDataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = litellm_tokenizer_dir()
    assert folder is not None
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
    reference = tiktoken.get_encoding("cl100k_base")
    gsm8k = benchmark_tables["gsm8k"]
    texts = gsm8k.prompts[:50] + [r for row in gsm8k.responses[:50] for r in row.values()]
    assert cl100k.name == "cl100k_base"
    assert [cl100k.count(t) for t in texts] == [len(reference.encode_ordinary(t)) for t in texts]
    assert cl100k.count("hello world") == 2


def test_loading_leaves_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = litellm_tokenizer_dir()
    assert folder is not None
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    load_cl100k(folder)
    assert "TIKTOKEN_CACHE_DIR" not in os.environ
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/somewhere/else")
    load_cl100k(folder)
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/somewhere/else"


def test_a_folder_without_the_file_or_with_another_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cl100k_base file"):
        load_cl100k(tmp_path)
    (tmp_path / CL100K_CACHE_KEY).write_bytes(b"aGVsbG8= 0\n")
    with pytest.raises(ConfigError, match="sha256 differs"):
        load_cl100k(tmp_path)


def test_auto_falls_back_to_the_approximation_and_says_why(tmp_path: Path) -> None:
    encoder, problems = load_encoder("auto", [tmp_path])
    assert isinstance(encoder, ApproxTokenizer)
    assert problems
    assert str(tmp_path) in problems[0]
    encoder, problems = load_encoder("auto", [])
    assert isinstance(encoder, ApproxTokenizer)
    assert "no tiktoken cache folder" in problems[0]


def test_required_cl100k_refuses_to_start_without_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokenizer=cl100k_base but it cannot load offline"):
        load_encoder("cl100k_base", [tmp_path])


def test_auto_takes_the_first_folder_that_holds_the_file(tmp_path: Path) -> None:
    folder = litellm_tokenizer_dir()
    assert folder is not None
    encoder, problems = load_encoder("auto", [tmp_path, folder])
    assert encoder.name == "cl100k_base"
    assert len(problems) == 1
    encoder, problems = load_encoder("approx", [folder])
    assert isinstance(encoder, ApproxTokenizer)
    assert problems == []


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("abcd", 1), ("abcde", 2), ("é" * 4, 2), ("日本", 2)]
)
def test_approximation_is_utf8_bytes_over_four_rounded_up(text: str, tokens: int) -> None:
    assert ApproxTokenizer().count(text) == tokens


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=80))
def test_truncation_is_a_prefix_within_the_limit(cl100k: Any, text: str, limit: int) -> None:
    for encoder in (cl100k, ApproxTokenizer()):
        cut = encoder.truncate(text, limit)
        assert text.startswith(cut)
        assert encoder.count(cut) <= limit
        if encoder.count(text) <= limit:
            assert cut == text


def test_counter_pins_warmed_texts_and_bounds_its_cache() -> None:
    calls: list[str] = []

    class Recording(ApproxTokenizer):
        def count(self, text: str) -> int:
            calls.append(text)
            return super().count(text)

    counter = TokenCounter(encoder=Recording(), lru_size=2, lru_max_chars=10)
    assert counter.warm(["pinned text", "pinned text", "other"]) == 2
    calls.clear()
    assert counter.count("pinned text") == 3
    assert calls == []
    for text in ("a", "b", "a", "c", "b"):  # "b" is evicted by "c", then counted again
        counter.count(text)
    assert calls == ["a", "b", "c", "b"]
    counter.count("x" * 11)
    counter.count("x" * 11)  # too long to cache
    assert calls[-2:] == ["x" * 11, "x" * 11]


def test_chat_prompt_rule() -> None:
    counter = TokenCounter(encoder=ApproxTokenizer())
    messages = [
        {"role": "system", "content": "abcdefgh"},  # 3 + role 2 + content 2
        {"role": "user", "content": "abcd", "name": "bob"},  # 3 + 1 + 1 + (1 + 1)
        {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},  # 3 + role 3 + 0
    ]
    assert counter.count_messages(messages) == 3 + (3 + 2 + 2) + (3 + 1 + 1 + 2) + (3 + 1 + 1) + (
        3 + 3
    )
