"""Core pieces without HTTP: stream splitting, fault draws, the catalogue, completions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.errors import ConfigError
from routeiq.routing.datasets import GPT4, MIXTRAL
from routeiq_upstream.core import (
    ChatRequest,
    FaultPolicy,
    ModelCatalog,
    OfflineUpstream,
    split_stream,
)
from routeiq_upstream.core.faults import failure_draw
from routeiq_upstream.errors import InjectedUnavailableError, ModelNotFoundError


@given(st.text(), st.integers(min_value=1, max_value=10))
def test_stream_chunks_join_back_to_the_text(text: str, words: int) -> None:
    chunks = split_stream(text, words)
    assert "".join(chunks) == text
    assert all(len(chunk.split()) <= words for chunk in chunks)
    assert all(chunk for chunk in chunks)


@given(st.text(max_size=50), st.text(max_size=50))
def test_failure_draw_is_a_fixed_number_in_the_unit_interval(model: str, key: str) -> None:
    draw = failure_draw(model, key)
    assert 0.0 <= draw < 1.0
    assert draw == failure_draw(model, key)


def test_fault_policy_rates_are_per_model() -> None:
    policy = FaultPolicy(error_rate={GPT4: 1.0, MIXTRAL: 0.0})
    assert isinstance(policy.injected_error(GPT4, "anything"), InjectedUnavailableError)
    assert policy.injected_error(MIXTRAL, "anything") is None
    assert policy.injected_error("other", "anything") is None


def test_jitter_stays_within_its_bound() -> None:
    policy = FaultPolicy(latency_ms=100, jitter_ms=50, model_latency_ms={MIXTRAL: 10})
    delays = [policy.delay_s(GPT4) for _ in range(200)]
    assert all(0.1 <= d <= 0.15 for d in delays)
    assert len(set(delays)) > 1
    assert all(0.01 <= policy.delay_s(MIXTRAL) <= 0.06 for _ in range(50))


def test_catalog_resolves_aliases_and_refuses_the_rest() -> None:
    catalog = ModelCatalog(models=[GPT4, MIXTRAL], aliases={"gpt-4": GPT4})
    assert catalog.resolve("gpt-4") == GPT4
    assert catalog.resolve(MIXTRAL) == MIXTRAL
    with pytest.raises(ModelNotFoundError):
        catalog.resolve("gpt-4-1106")
    with pytest.raises(ConfigError, match="no models"):
        ModelCatalog(models=[])


def test_completion_carries_the_fault_and_the_answer(
    make_upstream: Callable[..., OfflineUpstream],
) -> None:
    upstream = make_upstream(faults=FaultPolicy(error_rate={GPT4: 1.0}, latency_ms=3))
    request = ChatRequest(
        model="gpt-4", messages=[{"role": "user", "content": "What is 2+2?"}], prompt="What is 2+2?"
    )
    completion = upstream.complete(request)
    assert isinstance(completion.fault, InjectedUnavailableError)
    assert (completion.text, completion.answer.prompt_id, completion.delay_s) == (
        "4",
        "tiny-0",
        0.003,
    )
