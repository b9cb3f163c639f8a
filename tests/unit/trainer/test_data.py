"""Data preparation: time split with no decision on both sides, DR labels, dataset files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.routing.bundle import generate_ed25519
from routeiq.routing.datasets import ModelPrice
from routeiq.routing.routers import TrainingData
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.data import DataLoader, doubly_robust, time_split
from routeiq_trainer.core.embeddings import EmbeddingStore
from routeiq_trainer.core.requests import TrainRequest, resolve_options
from routeiq_trainer.errors import NoDataError
from unit.trainer.helpers import clustered


@given(
    st.lists(st.integers(0, 50), min_size=2, max_size=200),
    st.floats(0.05, 0.95),
)
def test_time_split_puts_every_instant_on_one_side(times: list[int], fraction: float) -> None:
    t = np.array(times, dtype=np.int64)
    ids = [f"d{i}" for i in range(len(t))]
    if len(set(times)) == 1:
        with pytest.raises(NoDataError, match="same event time"):
            time_split(t, ids, fraction)
        return
    train, val, cut = time_split(t, ids, fraction)
    assert sorted([*train, *val]) == list(range(len(t)))  # a partition of the rows
    assert not set(train) & set(val)
    assert t[train].max() < cut <= t[val].min()  # every validation row is newer
    assert len(val) >= 1
    assert len(train) >= 1


def test_time_split_takes_the_newest_fraction() -> None:
    t = np.arange(100, dtype=np.int64)[::-1].copy()
    _, val, cut = time_split(t, [str(i) for i in range(100)], 0.2)
    assert cut == 80
    assert sorted(t[val].tolist()) == list(range(80, 100))


def test_doubly_robust_fills_every_candidate_of_bandit_rows() -> None:
    x, q = clustered(400, seed=1)
    rng = np.random.default_rng(2)
    actions = rng.integers(0, 2, 400).astype(np.int64)
    bandit = np.full_like(q, np.nan)
    bandit[np.arange(400), actions] = q[np.arange(400), actions]
    data = TrainingData(embeddings=x, quality=bandit, models=("strong", "weak"))
    out = doubly_robust(data, actions, np.full(400, 0.5), seed=0)
    assert np.isfinite(out.quality).all()
    assert ((out.quality >= 0) & (out.quality <= 1)).all()
    assert out.weights is not None
    assert (out.weights == 1).all()
    # The unobserved model's pseudo-label comes from similar queries: on cluster 0 (weak
    # right) it is high for the weak model more often than on cluster 1.
    unobserved_weak = actions == 0
    weak_truth = q[unobserved_weak, 1]
    weak_pseudo = out.quality[unobserved_weak, 1]
    assert weak_pseudo[weak_truth == 1].mean() > weak_pseudo[weak_truth == 0].mean() + 0.3


def test_doubly_robust_leaves_full_information_rows_alone() -> None:
    x, q = clustered(50, seed=4)
    data = TrainingData(embeddings=x, quality=q, models=("strong", "weak"))
    out = doubly_robust(data, np.zeros(50, np.int64), np.full(50, 0.5), seed=0)
    assert np.array_equal(out.quality, q)


def _loader(tmp_path, embeddings: EmbeddingStore, **kw) -> DataLoader:
    return DataLoader(
        store=None,  # type: ignore[arg-type] - dataset files never touch S3
        shards_bucket="unused",
        embeddings=embeddings,
        prices={"big-model": ModelPrice(10, 30), "small-model": ModelPrice(0.5, 0.5)},
        min_train_examples=kw.get("min_train", 10),
        min_validation_examples=kw.get("min_val", 10),
    )


def test_a_dataset_file_loads_split_costed_and_with_texts(tmp_path, csv_dataset) -> None:
    path, prompts, x = csv_dataset
    embeddings = EmbeddingStore(cache_dir=tmp_path / "cache")
    cache_file = embeddings.path(prompts)
    cache_file.parent.mkdir(parents=True)
    np.save(cache_file, x, allow_pickle=False)
    settings = TrainerSettings.load({}, signing_key=generate_ed25519()[0])
    request = TrainRequest(
        request_id="r",
        model_name="m",
        requested_by="t",
        requested_at_ms=0,
        params={"dataset": str(path), "validation_fraction": "0.25", "seed": "5"},
    )
    data = _loader(tmp_path, embeddings).load(request, resolve_options(request, settings))
    assert data.models == ("big-model", "small-model")
    assert (data.strong, data.weak) == ("big-model", "small-model")
    assert len(data.validation) == 30
    assert len(data.train) == 90
    assert data.train.texts is not None
    assert data.validation.texts is not None
    assert not set(data.train.texts) & set(data.validation.texts)
    np.testing.assert_array_equal(
        data.validation.embeddings[0], x[prompts.index(data.validation.texts[0])]
    )
    # Costs: the big model costs more per request than the small one, on every row.
    assert (data.validation_costs[:, 0] > data.validation_costs[:, 1]).all()
    assert data.logged.source == "simulated-uniform"
    assert np.allclose(data.logged.propensities, 0.5)
    # Same seed, same split.
    again = _loader(tmp_path, embeddings).load(request, resolve_options(request, settings))
    assert again.validation_ids == data.validation_ids


def test_too_few_examples_is_no_data(tmp_path, csv_dataset) -> None:
    path, prompts, x = csv_dataset
    embeddings = EmbeddingStore(cache_dir=tmp_path / "cache")
    embeddings.path(prompts).parent.mkdir(parents=True)
    np.save(embeddings.path(prompts), x, allow_pickle=False)
    settings = TrainerSettings.load({}, signing_key=generate_ed25519()[0])
    request = TrainRequest(
        request_id="r",
        model_name="m",
        requested_by="t",
        requested_at_ms=0,
        params={"dataset": str(path)},
    )
    loader = _loader(tmp_path, embeddings, min_train=500)
    with pytest.raises(NoDataError, match="at least 500"):
        loader.load(request, resolve_options(request, settings))
