"""The upstream's settings: defaults, environment parsing, what the data cannot serve, and
exit code 2 (the refusals at load are in tests/unit/test_settings.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from routeiq.errors import ConfigError
from routeiq.routing.datasets import GPT4, MIXTRAL
from routeiq_upstream.config import UpstreamSettings
from routeiq_upstream.wiring import build_upstream
from support.processes import run_module, service_env


def test_defaults() -> None:
    s = UpstreamSettings.load({})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8090, None)
    assert s.datasets == ("gsm8k", "mt_bench", "llmrouter-train", "llmrouter-test")
    assert (s.latency_ms, s.latency_jitter_ms, s.stream_chunk_delay_ms) == (0, 0, 0)
    assert s.error_rate == {}
    assert s.model_latency_ms == {}
    assert s.api_key is None
    assert s.model_aliases is None  # the built-in ones, for the models that are served
    assert s.tokenizer == "auto"


def test_values_come_from_the_prefixed_environment(tmp_path: Path) -> None:
    s = UpstreamSettings.load(
        {
            "ROUTEIQ_UPSTREAM_PORT": "18090",
            "ROUTEIQ_UPSTREAM_DATA_DIR": str(tmp_path),
            "ROUTEIQ_UPSTREAM_DATASETS": "gsm8k, mt_bench",
            "ROUTEIQ_UPSTREAM_MODEL_LATENCY_MS": f'{{"{GPT4}": 120}}',
            "ROUTEIQ_UPSTREAM_ERROR_RATE": '{"mixtral-8x7b-instruct": 0.25}',
            "ROUTEIQ_UPSTREAM_ERROR_STATUS": "429",
            "ROUTEIQ_UPSTREAM_API_KEY": "zq-secret-9",
            "ROUTEIQ_UPSTREAM_MODEL_ALIASES": '{"fast": "mistralai/Mixtral-8x7B-Instruct-v0.1"}',
            "ROUTEIQ_UPSTREAM_TOKENIZER": "APPROX",
        }
    )
    assert s.port == 18090
    assert s.data_dir == tmp_path
    assert s.datasets == ("gsm8k", "mt_bench")
    assert s.model_latency_ms == {GPT4: 120.0}
    assert s.error_rate == {"mixtral-8x7b-instruct": 0.25}
    assert s.error_status == 429
    assert s.api_key is not None
    assert s.api_key.get_secret_value() == "zq-secret-9"
    assert "zq-secret-9" not in repr(s)
    assert s.model_aliases == {"fast": MIXTRAL}
    assert s.tokenizer == "approx"
    assert UpstreamSettings.load({"ROUTEIQ_UPSTREAM_DATASETS": '["mt_bench"]'}).datasets == (
        "mt_bench",
    )


# A small dataset served without the tiktoken file: what the build-time checks below start from.
MT_BENCH = {"ROUTEIQ_UPSTREAM_DATASETS": "mt_bench", "ROUTEIQ_UPSTREAM_TOKENIZER": "approx"}


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"ROUTEIQ_UPSTREAM_ERROR_RATE": '{"gpt-5": 0.5}'}, "error_rate names models that are"),
        ({"ROUTEIQ_UPSTREAM_MODEL_LATENCY_MS": '{"gpt-5": 5}'}, "model_latency_ms names models"),
        ({"ROUTEIQ_UPSTREAM_MODEL_ALIASES": '{"x": "gpt-5"}'}, "aliases point at models"),
        ({"ROUTEIQ_UPSTREAM_MODEL_ALIASES": f'{{"{GPT4}": "{MIXTRAL}"}}'}, "names of served"),
    ],
)
def test_settings_the_data_cannot_serve_are_refused(env: dict[str, str], reason: str) -> None:
    settings = UpstreamSettings.load({**MT_BENCH, **env})
    with pytest.raises(ConfigError, match=reason):
        build_upstream(settings)


def test_mappings_accept_aliases_and_are_keyed_by_canonical_name() -> None:
    settings = UpstreamSettings.load(
        {
            **MT_BENCH,
            "ROUTEIQ_UPSTREAM_ERROR_RATE": '{"mixtral-8x7b-instruct": 0.5}',
            "ROUTEIQ_UPSTREAM_MODEL_LATENCY_MS": '{"gpt-4": 7}',
        }
    )
    upstream = build_upstream(settings)
    assert dict(upstream.faults.error_rate) == {MIXTRAL: 0.5}
    assert dict(upstream.faults.model_latency_ms) == {GPT4: 7}
    assert len(upstream.index) == 72


def test_built_in_aliases_apply_to_the_models_that_are_served() -> None:
    both = build_upstream(UpstreamSettings.load({"ROUTEIQ_UPSTREAM_DATASETS": "mt_bench"}))
    assert both.catalog.resolve("mixtral-8x7b-instruct") == MIXTRAL
    assert both.catalog.resolve("gpt-4") == GPT4
    none = build_upstream(UpstreamSettings.load({"ROUTEIQ_UPSTREAM_DATASETS": "llmrouter-test"}))
    assert none.catalog.aliases == {}


def test_a_csv_dataset_is_served(tmp_path: Path) -> None:
    table = tmp_path / "mine.csv"
    table.write_text('prompt,model-a,model-a_response\n"Hello?",true,"Hi there."\n')
    settings = UpstreamSettings.load(
        {"ROUTEIQ_UPSTREAM_DATASETS": str(table), "ROUTEIQ_UPSTREAM_TOKENIZER": "approx"}
    )
    upstream = build_upstream(settings)
    assert upstream.catalog.models == ("model-a",)
    record, _ = upstream.index.find("Hello?", "model-a")
    assert record is not None
    assert record.responses == {"model-a": "Hi there."}


def _run_service(timeout: float = 60, **settings: str) -> subprocess.CompletedProcess[str]:
    return run_module(
        "routeiq_upstream", service_env("ROUTEIQ_UPSTREAM_", **settings), timeout=timeout
    )


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"port": "not-a-port"}, "port"),
        ({"latency_jiter_ms": "5"}, "ROUTEIQ_UPSTREAM_LATENCY_JITER_MS"),
        ({"error_rate": "{bad"}, "error_rate: Value error, not valid JSON"),
        ({"datasets": "mt_bench", "error_rate": '{"gpt-5": 0.5}'}, "not served: ['gpt-5']"),
    ],
)
def test_the_service_exits_2_with_the_reason(settings: dict[str, str], reason: str) -> None:
    result = _run_service(**settings)
    assert result.returncode == 2, result.stderr
    assert "routeiq-upstream: invalid configuration" in result.stderr
    assert reason in result.stderr


def test_required_cl100k_without_the_file_exits_2(tmp_path: Path) -> None:
    result = _run_service(
        datasets="mt_bench", tokenizer="cl100k_base", tiktoken_cache_dir=str(tmp_path)
    )
    assert result.returncode == 2
    assert "tokenizer=cl100k_base but it cannot load offline" in result.stderr
