"""The upstream as a process, through the official openai client and through LiteLLM, checked
against the benchmark tables as the shared loaders read them."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import litellm
import numpy as np
import openai
import pytest
import tiktoken
from integration.upstream.helpers import API_KEY, UpstreamProcess, spawn, stop
from routeiq.routing.datasets import GPT4, MIXTRAL, RoutingDataset, load_named
from routeiq_upstream.cl100k import litellm_tokenizer_dir
from support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tables() -> dict[str, RoutingDataset]:
    return {n: load_named(n) for n in ("gsm8k", "mt_bench", "llmrouter-train", "llmrouter-test")}


@pytest.fixture(scope="module")
def cl100k() -> Iterator[tiktoken.Encoding]:
    """tiktoken's own cl100k_base, read from the files litellm bundles (as litellm does)."""
    folder = litellm_tokenizer_dir()
    assert folder is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
        yield tiktoken.get_encoding("cl100k_base")


@pytest.fixture(scope="module")
def client(upstream: UpstreamProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.base_url, api_key=API_KEY, max_retries=0)


def _sample(table: RoutingDataset, n: int, seed: int = 0) -> list[int]:
    return sorted(np.random.default_rng(seed).choice(len(table), size=n, replace=False).tolist())


def test_recorded_answers_and_scores_through_the_openai_client(
    client: openai.OpenAI, tables: dict[str, RoutingDataset], cl100k: tiktoken.Encoding
) -> None:
    for name in ("gsm8k", "mt_bench"):
        table = tables[name]
        for i in _sample(table, 4):
            for j, model in enumerate(table.models):
                messages = [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": table.prompts[i]},
                ]
                raw = client.chat.completions.with_raw_response.create(
                    model=model, messages=messages
                )
                completion = raw.parse()
                assert completion.model == model
                assert completion.choices[0].message.content == table.responses[i][model]
                assert completion.choices[0].finish_reason == "stop"
                assert raw.headers["x-routeiq-known"] == "true"
                assert raw.headers["x-routeiq-dataset"] == name
                assert raw.headers["x-routeiq-prompt-id"] == table.ids[i]
                assert float(raw.headers["x-routeiq-recorded-score"]) == table.scores[i, j]
                usage = completion.usage
                assert usage is not None
                if all(len(m["content"]) <= 1024 for m in messages):
                    # litellm counts a GPT-4 prompt by the same rule, implemented separately
                    # (exactly for texts up to its 1024-character encoding chunk).
                    assert usage.prompt_tokens == litellm.token_counter(
                        model=GPT4, messages=messages
                    )
                expected = len(cl100k.encode_ordinary(table.responses[i][model]))
                assert usage.completion_tokens == expected
                assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_llmrouter_scores_through_the_openai_client(
    client: openai.OpenAI, tables: dict[str, RoutingDataset]
) -> None:
    table = tables["llmrouter-test"]
    for i in _sample(table, 3, seed=1):
        for j, model in enumerate(table.models):
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": table.prompts[i]}]
            )
            text = raw.parse().choices[0].message.content or ""
            assert raw.headers["x-routeiq-answer"] == "scored"
            assert float(raw.headers["x-routeiq-recorded-score"]) == table.scores[i, j]
            assert f"{table.scores[i, j]:.4f}" in text
            assert "offline" in text.lower()


def test_streaming_through_the_openai_client(
    client: openai.OpenAI, tables: dict[str, RoutingDataset]
) -> None:
    table = tables["mt_bench"]
    i = _sample(table, 1, seed=2)[0]
    messages = [{"role": "user", "content": table.prompts[i]}]
    plain = client.chat.completions.create(model="mixtral-8x7b-instruct", messages=messages)
    stream = client.chat.completions.create(
        model="mixtral-8x7b-instruct",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == table.responses[i][MIXTRAL] == plain.choices[0].message.content
    assert finish == "stop"
    assert usage is not None
    assert plain.usage is not None
    assert usage.model_dump() == plain.usage.model_dump()


def test_unknown_prompts_are_answered_and_marked(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "A prompt that no benchmark recorded, 7f3a."}]
    first = client.chat.completions.with_raw_response.create(model=GPT4, messages=messages)
    second = client.chat.completions.create(model=GPT4, messages=messages)
    text = first.parse().choices[0].message.content
    assert text == second.choices[0].message.content
    assert text is not None
    assert "NOT RECORDED" in text
    assert first.headers["x-routeiq-known"] == "false"
    assert first.headers["x-routeiq-dataset"] == "none"


def test_client_errors_map_to_the_openai_exceptions(upstream: UpstreamProcess) -> None:
    client = openai.OpenAI(base_url=upstream.base_url, api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=GPT4, messages=[])
    assert bad.value.param == "messages"
    wrong = openai.OpenAI(base_url=upstream.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model=GPT4, messages=[{"role": "user", "content": "x"}])
    models = [m.id for m in client.models.list()]
    assert {GPT4, MIXTRAL, "qwen2.5-7b-instruct", "mixtral-8x7b-instruct"} <= set(models)
    response = httpx.post(
        f"{upstream.base_url}/chat/completions",
        content=b"{broken",
        headers={"authorization": f"Bearer {API_KEY}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_litellm_calls_it_as_an_openai_compatible_provider(
    upstream: UpstreamProcess, tables: dict[str, RoutingDataset]
) -> None:
    table = tables["gsm8k"]
    i = _sample(table, 1, seed=3)[0]
    messages = [{"role": "user", "content": table.prompts[i]}]
    response = litellm.completion(
        model=f"openai/{GPT4}",
        api_base=upstream.base_url,
        api_key=API_KEY,
        messages=messages,
    )
    assert response.choices[0].message.content == table.responses[i][GPT4]
    assert response.usage.prompt_tokens == litellm.token_counter(model=GPT4, messages=messages)
    chunks = litellm.completion(
        model=f"openai/{MIXTRAL}",
        api_base=upstream.base_url,
        api_key=API_KEY,
        messages=messages,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == table.responses[i][MIXTRAL]


def test_litellm_router_falls_back_when_the_upstream_injects_errors(
    start_upstream: Callable[..., UpstreamProcess], tables: dict[str, RoutingDataset]
) -> None:
    faulty = start_upstream(
        datasets="gsm8k", error_rate=json.dumps({GPT4: 1.0}), error_status="503"
    )
    table = tables["gsm8k"]
    i = _sample(table, 1, seed=4)[0]
    messages = [{"role": "user", "content": table.prompts[i]}]
    with pytest.raises(litellm.ServiceUnavailableError):
        litellm.completion(
            model=f"openai/{GPT4}",
            api_base=faulty.base_url,
            api_key="unused",
            messages=messages,
            num_retries=0,
        )
    router = litellm.Router(
        model_list=[
            {
                "model_name": "strong",
                "litellm_params": {
                    "model": f"openai/{GPT4}",
                    "api_base": faulty.base_url,
                    "api_key": "unused",
                },
            },
            {
                "model_name": "weak",
                "litellm_params": {
                    "model": f"openai/{MIXTRAL}",
                    "api_base": faulty.base_url,
                    "api_key": "unused",
                },
            },
        ],
        fallbacks=[{"strong": ["weak"]}],
        num_retries=0,
    )
    response = router.completion(model="strong", messages=messages)
    assert response.choices[0].message.content == table.responses[i][MIXTRAL]
    metrics = httpx.get(f"{faulty.url}/metrics").text
    assert f'known="true",model="{GPT4}",status="503"}}' in metrics
    assert f'known="true",model="{MIXTRAL}",status="200"}}' in metrics


def test_two_processes_answer_unknown_prompts_with_the_same_text(
    start_upstream: Callable[..., UpstreamProcess], client: openai.OpenAI
) -> None:
    other = start_upstream(datasets="mt_bench", tokenizer="cl100k_base")
    messages = [{"role": "user", "content": "Unrecorded: describe a quiet harbour at dawn."}]
    theirs = openai.OpenAI(base_url=other.base_url, api_key="none", max_retries=0)
    a = client.chat.completions.create(model=GPT4, messages=messages)
    b = theirs.chat.completions.create(model=GPT4, messages=messages)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage == b.usage


def test_start_up_log_says_where_and_what(upstream: UpstreamProcess) -> None:
    log = upstream.log()
    assert f"offline upstream on http://127.0.0.1:{upstream.port}/v1" in log
    assert "7318 prompts (gsm8k 1307, mt_bench 72, llmrouter-train 5608, llmrouter-test 500)" in log
    assert "11 models" in log
    assert "tokenizer cl100k_base" in log
    assert API_KEY not in log


def test_a_taken_port_fails_the_start(upstream: UpstreamProcess, tmp_path: Path) -> None:
    process = spawn(tmp_path / "second.log", upstream.port, datasets="mt_bench")
    try:
        assert process.wait(timeout=60) == 3  # uvicorn's code for a server that cannot start
    finally:
        stop(process)
    assert "address already in use" in (tmp_path / "second.log").read_text().lower()


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = spawn(tmp_path / "term.log", port, datasets="mt_bench")
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        stop(process)
    log = (tmp_path / "term.log").read_text()
    # uvicorn shuts down gracefully, then re-raises the signal so the parent sees SIGTERM.
    assert process.returncode in {0, -signal.SIGTERM}, log
    assert "Finished server process" in log
