"""Benchmark loaders: sizes, decontamination, prices and the CSV format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from routeiq.errors import ConfigError
from routeiq.routing.datasets import (
    GPT4,
    MIXTRAL,
    load_csv,
    load_gsm8k,
    load_llmrouter,
    load_mt_bench,
    load_named,
)


def test_gsm8k_drops_contaminated_rows_and_matches_published_accuracies() -> None:
    ds = load_gsm8k()
    assert len(ds) == 1307
    assert len(load_gsm8k(drop_contaminated=False)) == 1319
    assert ds.column(GPT4).mean() == pytest.approx(0.858, abs=0.005)
    assert ds.column(MIXTRAL).mean() == pytest.approx(0.637, abs=0.005)
    assert all(r[GPT4] for r in ds.responses)
    assert ds.strong == GPT4
    assert ds.prices[GPT4].cost(1000, 1000) == pytest.approx(0.04)


def test_split_is_seeded_and_disjoint() -> None:
    ds = load_gsm8k()
    a, b = ds.split(test_fraction=0.5, seed=3)
    a2, _ = ds.split(test_fraction=0.5, seed=3)
    assert a.ids == a2.ids
    assert not set(a.ids) & set(b.ids)
    assert len(a) + len(b) == len(ds)


def test_mt_bench_and_llmrouter() -> None:
    mt = load_mt_bench()
    assert len(mt) == 72
    assert np.nanmax(mt.scores) <= 1.0
    lr = load_llmrouter(split="test")
    assert len(lr) == 500
    assert len(lr.models) == 9
    assert set(lr.prices) == set(lr.models)
    assert load_named("llmrouter-train").scores.shape == (5608, 9)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_named("nope")


def test_csv_with_boolean_and_numeric_columns(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("prompt,big,small,big_response\nhello,True,False,hi!\nsum 2+2,1,1,4\n")
    ds = load_csv(path)
    assert ds.models == ("big", "small")
    assert ds.scores.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert ds.responses[0]["big"] == "hi!"
    path.write_text("question,a\nx,1\n")
    with pytest.raises(ConfigError, match="no column 'prompt'"):
        load_csv(path)
