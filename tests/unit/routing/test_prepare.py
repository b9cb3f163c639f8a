"""Data preparation shared by the trainer and `routeiq eval`: repeats merged, models aligned
by name, splits that are functions of (rows, seed)."""

from __future__ import annotations

import numpy as np
import pytest
from routeiq.routing.datasets import ModelPrice, RoutingDataset, prompt_id
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.prepare import (
    DataError,
    align_models,
    merge_repeats,
    prepare_split,
    prepare_train_test,
    subsample_train,
)
from support.features import tiny_static

PRICES = {"a": ModelPrice(1, 1), "b": ModelPrice(2, 2), "c": ModelPrice(3, 3)}


def _ds(prompts: list[str], scores: list[list[float]], models=("a", "b", "c")) -> RoutingDataset:
    return RoutingDataset(
        name="t",
        ids=[f"t-{prompt_id(p)}" for p in prompts],
        prompts=prompts,
        models=tuple(models),
        scores=np.array(scores, dtype=float),
        prices={m: PRICES[m] for m in models},
    )


def test_repeated_prompts_merge_into_one_row_with_mean_scores() -> None:
    ds = _ds(["x", "y", "x", "z", "x"], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 0, 1]])
    merged = merge_repeats(ds)
    assert merged.prompts == ["x", "y", "z"]
    np.testing.assert_allclose(merged.scores[0], [2 / 3, 0, 2 / 3])
    assert len(merged.ids) == len(merged.prompts) == merged.scores.shape[0]


def test_missing_grades_do_not_count_and_ungraded_rows_go() -> None:
    nan = float("nan")
    ds = _ds(["x", "x", "y"], [[1, nan, 0], [0, 1, nan], [nan, nan, nan]])
    merged = merge_repeats(ds)
    assert merged.prompts == ["x"]
    np.testing.assert_allclose(merged.scores[0], [0.5, 1.0, 0.0])


def test_models_align_by_name_whatever_the_order() -> None:
    ds = _ds(["x"], [[0.1, 0.2, 0.3]])
    again = align_models(ds, ("c", "a"))
    assert again.models == ("c", "a")
    np.testing.assert_allclose(again.scores, [[0.3, 0.1]])
    with pytest.raises(DataError, match="no scores for"):
        align_models(ds, ("a", "zzz"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prep")
    return FeatureStore(cache_dir=folder / "cache", featurizer=tiny_static(folder / "f"))


def test_train_and_test_files_listing_models_in_another_order_line_up(store) -> None:
    rng = np.random.default_rng(0)
    train = _ds([f"q{i}" for i in range(30)], rng.random((30, 3)).tolist())
    test = _ds([f"t{i}" for i in range(10)], rng.random((10, 3)).tolist(), models=("c", "a", "b"))
    data = prepare_train_test(train, test, store=store)
    assert data.models == ("c", "a", "b")
    np.testing.assert_allclose(data.train.quality[:, 0], train.scores[:, 2])
    assert data.validation_costs.shape == (10, 3)
    assert data.features_id == store.features_id
    assert (data.strong, data.weak) == ("c", "a")  # the most and the least expensive


def test_a_split_is_a_function_of_rows_and_seed(store) -> None:
    ds = _ds([f"q{i}" for i in range(40)], np.eye(3)[np.arange(40) % 3].tolist())
    one, two = (prepare_split(ds, store=store, validation_fraction=0.25, seed=3) for _ in "ab")
    assert one.validation_ids == two.validation_ids
    assert len(one.validation) == 10
    other = prepare_split(ds, store=store, validation_fraction=0.25, seed=4)
    assert other.validation_ids != one.validation_ids
    assert not set(one.train.texts or []) & set(one.validation.texts or [])
    sub = subsample_train(one, fraction=0.5, seed=0)
    assert len(sub.train) == 15
    assert sub.validation_ids == one.validation_ids
