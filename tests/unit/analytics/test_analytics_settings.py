"""Settings: defaults for the local stack, durations and price tables, and exit code 2 at start
(the refusals are in tests/unit/test_settings.py)."""

from __future__ import annotations

import pytest
from routeiq.errors import ConfigError
from routeiq.routing.datasets import (
    GPT4,
    MIXTRAL,
    ROUTELLM_PRICES,
    ModelPrice,
    default_data_dir,
    llmrouter_prices,
)
from routeiq_analytics.config import AnalyticsSettings
from routeiq_analytics.core.aggregator import Aggregator
from support.processes import run_module


def test_defaults_fit_the_local_stack() -> None:
    s = AnalyticsSettings.load({})
    assert s.port == 8095
    assert s.windows == (300, 3600)
    assert s.retention_s == 3600
    assert s.default_window == 3600
    assert (s.strong_model, s.weak_model) == (GPT4, MIXTRAL)
    assert s.price_table()[GPT4].cost(1_000_000, 1_000_000) == 40.0
    assert s.decisions_topic == "routeiq.router_decision.v1"
    assert s.group_id == "routeiq-analytics"


def _has_llmrouter_data() -> bool:
    try:
        return (default_data_dir() / "llmrouter" / "default_llm.json").is_file()
    except ConfigError:
        return False


def test_default_prices_know_routellm_and_llmrouter_models() -> None:
    table = AnalyticsSettings.load({}).price_table()
    assert table[GPT4] == ROUTELLM_PRICES[GPT4]
    assert table[MIXTRAL] == ROUTELLM_PRICES[MIXTRAL]
    if not _has_llmrouter_data():
        pytest.skip("LLMRouter's benchmark data is not in this checkout")
    assert table == {**ROUTELLM_PRICES, **llmrouter_prices()}
    assert AnalyticsSettings.load({"ROUTEIQ_ANALYTICS_PRICES": "known"}).price_table() == table


def test_extra_prices_add_and_correct_models_over_the_base_table() -> None:
    s = AnalyticsSettings.load(
        {
            "ROUTEIQ_ANALYTICS_PRICES": "routellm",
            "ROUTEIQ_ANALYTICS_EXTRA_PRICES": '{"in-house": {"input_per_m": 0.05, '
            '"output_per_m": 0.1}, "gpt-4-1106-preview": {"input_per_m": 5, "output_per_m": 15}}',
        }
    )
    table = s.price_table()
    assert set(table) == {GPT4, MIXTRAL, "in-house"}
    assert table["in-house"].cost(1_000_000, 1_000_000) == pytest.approx(0.15)
    assert table[GPT4].cost(1_000_000, 0) == 5.0  # corrected


def test_auto_pair_candidates_and_the_best_model_minimum() -> None:
    s = AnalyticsSettings.load(
        {
            "ROUTEIQ_ANALYTICS_STRONG_MODEL": "auto",
            "ROUTEIQ_ANALYTICS_WEAK_MODEL": "",
            "ROUTEIQ_ANALYTICS_CANDIDATES": f"{GPT4}, {MIXTRAL}",
            "ROUTEIQ_ANALYTICS_BEST_MODEL_MIN_GRADED": "50",
        }
    )
    assert (s.strong_model, s.weak_model, s.pair) == (None, None, None)
    assert s.candidates == (GPT4, MIXTRAL)
    assert s.best_model_min_graded == 50
    defaults = AnalyticsSettings.load({})
    assert defaults.pair == (GPT4, MIXTRAL)
    assert defaults.candidates == ()
    assert defaults.best_model_min_graded == 20
    listed = AnalyticsSettings.load({"ROUTEIQ_ANALYTICS_CANDIDATES": f'["{GPT4}"]'})
    assert listed.candidates == (GPT4,)


def test_the_aggregator_is_built_with_every_setting_it_takes() -> None:
    s = AnalyticsSettings.load(
        {
            "ROUTEIQ_ANALYTICS_BUCKET": "30s",
            "ROUTEIQ_ANALYTICS_RETENTION": "2h",
            "ROUTEIQ_ANALYTICS_STRONG_MODEL": MIXTRAL,
            "ROUTEIQ_ANALYTICS_WEAK_MODEL": GPT4,
            "ROUTEIQ_ANALYTICS_CANDIDATES": f"{GPT4}, {MIXTRAL}",
            "ROUTEIQ_ANALYTICS_BEST_MODEL_MIN_GRADED": "7",
            "ROUTEIQ_ANALYTICS_LATENCY_SAMPLE_SIZE": "64",
            "ROUTEIQ_ANALYTICS_MAX_JOIN_DECISIONS": "1000",
            "ROUTEIQ_ANALYTICS_MAX_PENDING_FEEDBACK": "500",
            "ROUTEIQ_ANALYTICS_FEEDBACK_WAIT": "5m",
            "ROUTEIQ_ANALYTICS_MAX_LABELS": "9",
        }
    )
    agg = Aggregator.from_settings(s)
    assert (agg.bucket_s, agg.retention_s, agg.pair) == (30, 7200, (MIXTRAL, GPT4))
    assert agg.candidates == (GPT4, MIXTRAL)
    assert (agg.best_model_min_graded, agg.latency_sample_size) == (7, 64)
    assert (agg._max_join, agg._max_pending, agg._max_labels) == (1000, 500, 9)
    assert agg._feedback_wait_s == 300
    assert agg._prices == s.price_table()


def test_the_process_environment_takes_table_names_and_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The service reads os.environ, where pydantic-settings would parse complex fields as
    # JSON itself: "llmrouter" or "5m,1h" must reach the validators as text.
    if not _has_llmrouter_data():
        pytest.skip("LLMRouter's benchmark data is not in this checkout")
    for name, value in {
        "ROUTEIQ_ANALYTICS_PRICES": "llmrouter",
        "ROUTEIQ_ANALYTICS_EXTRA_PRICES": '{"x": {"input_per_m": 1, "output_per_m": 1}}',
        "ROUTEIQ_ANALYTICS_STRONG_MODEL": "auto",
        "ROUTEIQ_ANALYTICS_WEAK_MODEL": "auto",
        "ROUTEIQ_ANALYTICS_WINDOWS": "5m,1h",
        "ROUTEIQ_ANALYTICS_CANDIDATES": "llama3-70b-instruct,gemma-2-9b-it",
    }.items():
        monkeypatch.setenv(name, value)
    s = AnalyticsSettings.load()
    assert s.price_table() == {**llmrouter_prices(), "x": ModelPrice(1.0, 1.0)}
    assert s.windows == (300, 3600)
    assert s.candidates == ("llama3-70b-instruct", "gemma-2-9b-it")
    assert s.pair is None


def test_llmrouter_price_table_by_name() -> None:
    if not (default_data_dir() / "llmrouter" / "default_llm.json").is_file():
        pytest.skip("LLMRouter's benchmark data is not in this checkout")
    s = AnalyticsSettings.load(
        {
            "ROUTEIQ_ANALYTICS_PRICES": "llmrouter",
            "ROUTEIQ_ANALYTICS_STRONG_MODEL": "llama3-70b-instruct",
            "ROUTEIQ_ANALYTICS_WEAK_MODEL": "qwen2.5-7b-instruct",
        }
    )
    assert s.price_table() == llmrouter_prices()


def test_the_service_exits_2_and_prints_the_reason() -> None:
    proc = run_module(
        "routeiq_analytics",
        {"ROUTEIQ_ANALYTICS_RETENTION": "1m", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "invalid configuration" in proc.stderr
    assert "retention: 60s is shorter than the largest window (3600s)" in proc.stderr
