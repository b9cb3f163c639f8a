"""The numpy MiniLM reproduces sentence-transformers' all-MiniLM-L6-v2 vectors."""

from __future__ import annotations

import numpy as np
import pytest
from routeiq.routing.embedding import DIMENSION, EmbeddingCache, MiniLMEncoder, packaged_model_dir

TEXTS = [
    "What is 17 times 23?",
    "Write a Python function that reverses a linked list.",
    "hi",
    "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning.",
    "x " * 400,  # longer than the 256-token window: truncated the same way
]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


def test_matches_sentence_transformers(encoder: MiniLMEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(packaged_model_dir()), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )
    ours = encoder.encode(TEXTS)
    assert ours.shape == (len(TEXTS), DIMENSION)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_batching_does_not_change_vectors(encoder: MiniLMEncoder) -> None:
    batched = encoder.encode(TEXTS, batch_size=8)
    single = np.vstack([encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_cache_hits_return_the_same_vector(encoder: MiniLMEncoder) -> None:
    cache = EmbeddingCache(encoder, capacity=2)
    first = cache.embed(["a", "b"])
    again = cache.embed(["b", "a"])
    np.testing.assert_array_equal(first[::-1], again)
    assert (cache.hits, cache.misses) == (2, 2)
    cache.embed(["c"])  # evicts "b", the least recently used
    cache.embed(["a"])
    assert cache.misses == 3
    cache.embed(["b"])
    assert cache.misses == 4


def test_the_batching_embedder_batches_concurrent_callers(encoder: MiniLMEncoder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from routeiq.routing.embedding import BatchingEmbedder

    embedder = BatchingEmbedder(EmbeddingCache(encoder, capacity=0), max_wait_s=0.05)
    texts = [f"question number {i} about ducks" for i in range(24)]
    try:
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(embedder.embed, texts))
    finally:
        embedder.close()
    np.testing.assert_allclose(np.vstack(got), encoder.encode(texts), atol=1e-5)
    assert embedder.batched_texts == 24
    assert embedder.batches < 24  # callers shared forward passes
