"""Synthetic traffic from a benchmark: uniform logging, honest labels, stable ids, and rows the
trainer reads back through the shard contract with the recorded grades."""

from __future__ import annotations

import math

import numpy as np
import pytest
from routeiq.routing.datasets import ModelPrice, RoutingDataset
from routeiq.shards import to_table, training_data
from routeiq_trainer.errors import RequestError
from routeiq_trainer.synthetic import QUALITY_SOURCE, STRATEGY, SyntheticPlan, synthetic_rows

MODELS = ("strong", "weak", "mid")
PRICES = {"strong": ModelPrice(10.0, 30.0), "weak": ModelPrice(0.5, 0.5), "mid": ModelPrice(1, 2)}


def _dataset(n: int = 300, seed: int = 0) -> tuple[RoutingDataset, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 2, size=(n, len(MODELS))).astype(np.float64)
    scores[::7, 2] = np.nan  # "mid" has no grade for every 7th prompt
    ds = RoutingDataset(
        name="toy",
        ids=[f"p{i}" for i in range(n)],
        prompts=[f"question {i} " * (1 + i % 5) for i in range(n)],
        models=MODELS,
        scores=scores,
    )
    return ds, rng.normal(size=(n, 8)).astype(np.float32)


def _rows(plan: SyntheticPlan, n: int = 300) -> tuple[RoutingDataset, list[dict]]:
    ds, emb = _dataset(n)
    return ds, synthetic_rows(ds, emb, features_id="toy-features", prices=PRICES, plan=plan)


def test_each_prompt_is_served_uniformly_among_the_graded_models() -> None:
    ds, emb = _dataset()
    plan = SyntheticPlan(seed=1, start_ms=1_700_000_000_000, spacing_ms=1000)
    rows = synthetic_rows(ds, emb, features_id="toy-features", prices=PRICES, plan=plan)
    assert len(rows) == len(ds)
    # Each row's prompt, found by its (unique) feature vector.
    index = {emb[i].tobytes(): i for i in range(len(ds))}
    served = dict.fromkeys(MODELS, 0)
    for row in rows:
        i = index[np.asarray(row["embedding"], dtype=np.float32).tobytes()]
        assert row["query_length"] == len(ds.prompts[i])
        graded = [m for j, m in enumerate(MODELS) if not math.isnan(ds.scores[i, j])]
        assert row["candidate_models"] == graded
        assert row["propensity"] == pytest.approx(1 / len(graded))
        assert row["candidate_propensities"] == [row["propensity"]] * len(graded)
        assert row["selected_model"] in graded
        j = MODELS.index(row["selected_model"])
        assert row["quality"] == ds.scores[i, j]
        assert row["outcome_models"] == [row["selected_model"]]
        assert (row["strategy"], row["quality_source"]) == (STRATEGY, QUALITY_SOURCE)
        assert row["embedding_model"] == "toy-features"
        assert row["reward"] == row["quality"]  # cost_weight 0
        served[row["selected_model"]] += 1
    # Uniform: every model serves about a third (mid a little less: it is missing some).
    assert all(70 < count < 130 for count in served.values()), served


def test_ids_times_and_windows_are_functions_of_the_plan() -> None:
    plan = SyntheticPlan(seed=4, start_ms=1_700_000_123_000, spacing_ms=60_000, window_ms=3_600_000)
    _, first = _rows(plan)
    _, second = _rows(plan)
    assert [r["decision_id"] for r in first] == [r["decision_id"] for r in second]
    assert len({r["decision_id"] for r in first}) == len(first)
    _, other_seed = _rows(SyntheticPlan(seed=5, start_ms=plan.start_ms, spacing_ms=60_000))
    assert not {r["decision_id"] for r in first} & {r["decision_id"] for r in other_seed}
    times = [int(r["event_time"].timestamp() * 1000) for r in first]
    assert times == [plan.start_ms + k * plan.spacing_ms for k in range(len(first))]
    for row, t in zip(first, times, strict=True):
        start = int(row["window_start"].timestamp() * 1000)
        assert start % plan.window_ms == 0
        assert start <= t < start + plan.window_ms


def test_shadow_fraction_and_cost_weight() -> None:
    plan = SyntheticPlan(seed=2, start_ms=0, shadow_fraction=0.5, cost_weight=100.0, limit=200)
    _, rows = _rows(plan)
    assert len(rows) == 200
    full = [r for r in rows if len(r["outcome_models"]) > 1]
    assert 70 < len(full) < 130
    for row in full:
        assert sorted(row["outcome_models"]) == sorted(row["candidate_models"])
        assert row["outcome_models"][0] == row["selected_model"]
    for row in rows:
        assert row["cost_usd"] > 0
        assert row["reward"] == pytest.approx(row["quality"] - 100.0 * row["cost_usd"])
    strong = [r["cost_usd"] for r in rows if r["selected_model"] == "strong"]
    weak = [r["cost_usd"] for r in rows if r["selected_model"] == "weak"]
    assert min(strong) > max(weak)


def test_the_trainer_reads_the_recorded_grades_back() -> None:
    ds, rows = _rows(SyntheticPlan(seed=3, start_ms=0, shadow_fraction=1.0))
    data = training_data(to_table(rows), models=MODELS)
    ids = {r["decision_id"]: r for r in rows}
    order = sorted(ids)  # to_table sorts by decision id
    for k, decision_id in enumerate(order):
        row = ids[decision_id]
        for model, quality in zip(row["outcome_models"], row["outcome_qualities"], strict=True):
            assert data.quality[k, MODELS.index(model)] == quality
    assert np.isnan(data.quality).sum() == int(np.isnan(ds.scores).sum())


@pytest.mark.parametrize(
    "bad",
    [
        {"shadow_fraction": 1.5},
        {"spacing_ms": 0},
        {"partitions": 0},
        {"limit": -1},
        {"cost_weight": -0.1},
    ],
)
def test_a_bad_plan_is_refused(bad: dict) -> None:
    with pytest.raises(RequestError):
        SyntheticPlan(start_ms=0, **bad)
