"""Upstream unit tests: small hand-made tables for exact expectations, the shipped benchmark
data (local files, no network) where the real tables matter, and apps through TestClient."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from routeiq.routing.datasets import GPT4, MIXTRAL, RoutingDataset, load_named
from routeiq_upstream.api import UpstreamMetrics, create_app
from routeiq_upstream.cl100k import litellm_tokenizer_dir, load_cl100k
from routeiq_upstream.core import (
    FaultPolicy,
    ModelCatalog,
    OfflineUpstream,
    PromptIndex,
    TokenCounter,
)
from routeiq_upstream.core.tokens import ApproxTokenizer
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 in its test client; httpx (what we have) still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

NAN = float("nan")


def two_model_table() -> RoutingDataset:
    """Like RouteLLM's tables: GPT-4 and Mixtral, answers and 0/1 correctness."""
    return RoutingDataset(
        name="tiny",
        ids=["tiny-0", "tiny-1", "tiny-2"],
        prompts=["What is  2+2?\n", "Name a colour.", "Only GPT-4 was asked this."],
        models=(GPT4, MIXTRAL),
        scores=np.array([[1.0, 0.0], [1.0, 1.0], [0.0, NAN]]),
        responses=[
            {GPT4: "4", MIXTRAL: "5"},
            {GPT4: "Blue.", MIXTRAL: ""},
            {GPT4: "An answer.", MIXTRAL: ""},
        ],
    )


def scores_only_table() -> RoutingDataset:
    """Like LLMRouter: scores for other models, no texts; shares one prompt with ``tiny``."""
    return RoutingDataset(
        name="scores",
        ids=["scores-0", "scores-1"],
        prompts=["what is 2+2?", "Name  a colour."],
        models=("small-model", "big-model"),
        scores=np.array([[0.25, 0.75], [0.5, 1.0]]),
    )


@pytest.fixture
def tables() -> list[RoutingDataset]:
    return [two_model_table(), scores_only_table()]


@pytest.fixture
def index(tables: list[RoutingDataset]) -> PromptIndex:
    return PromptIndex.build(tables)


@pytest.fixture(scope="session")
def cl100k() -> Any:
    folder = litellm_tokenizer_dir()
    assert folder is not None, "litellm (a locked dependency) bundles tiktoken's files"
    return load_cl100k(folder)


@pytest.fixture
def make_upstream(index: PromptIndex) -> Callable[..., OfflineUpstream]:
    """``make_upstream(faults=..., aliases=..., index=...)`` over the tiny tables."""

    def make(
        *,
        faults: FaultPolicy | None = None,
        aliases: dict[str, str] | None = None,
        index_: PromptIndex | None = None,
        encoder: Any = None,
        stream_chunk_words: int = 2,
    ) -> OfflineUpstream:
        idx = index_ or index
        counter = TokenCounter(encoder=encoder or ApproxTokenizer())
        counter.warm(idx.texts())
        return OfflineUpstream(
            index=idx,
            catalog=ModelCatalog(models=idx.models, aliases=aliases or {"gpt-4": GPT4}),
            counter=counter,
            faults=faults,
            stream_chunk_words=stream_chunk_words,
        )

    return make


@pytest.fixture
def client_for() -> Callable[..., TestClient]:
    """``client_for(upstream, **create_app_kwargs)``: a TestClient over a fresh app."""

    def make(upstream: OfflineUpstream, **kwargs: Any) -> TestClient:
        kwargs.setdefault("metrics", UpstreamMetrics())
        return TestClient(create_app(upstream, **kwargs), raise_server_exceptions=False)

    return make


@pytest.fixture
def client(
    make_upstream: Callable[..., OfflineUpstream], client_for: Callable[..., TestClient]
) -> TestClient:
    return client_for(make_upstream())


@pytest.fixture(scope="session")
def benchmark_tables() -> dict[str, RoutingDataset]:
    """The shipped benchmark data, as the service loads it by default."""
    return {
        name: load_named(name)
        for name in ("gsm8k", "mt_bench", "llmrouter-train", "llmrouter-test")
    }
