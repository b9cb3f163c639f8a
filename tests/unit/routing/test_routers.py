"""Every router type learns a separable problem, round-trips through its safe files exactly,
and refuses unsafe files."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from routeiq.routing.routers import (
    ROUTER_TYPES,
    FitContext,
    RouterError,
    TrainingData,
    router_class,
)

FAST = {"mlp": {"epochs": 15}, "mf": {"epochs": 20}}


@pytest.mark.parametrize("kind", ["knn", "svm", "mlp", "mf"])
def test_router_learns_and_round_trips(kind: str, synthetic, tmp_path: Path) -> None:
    train, test = synthetic
    ctx = FitContext(seed=0)
    router = router_class(kind).fit(train, FAST.get(kind), ctx=ctx)
    pred = router.predict(test.embeddings)
    assert pred.shape == (len(test), 2)
    accuracy = np.mean(pred.argmax(1) == test.quality.argmax(1))
    assert accuracy > 0.8, f"{kind} accuracy {accuracy:.2f}"
    assert ctx.info["device"] in {"cpu", "cuda"}
    files = router.save(tmp_path)
    assert all((tmp_path / f).is_file() for f in files)
    assert not any(f.endswith((".pkl", ".pickle", ".pt", ".joblib")) for f in files)
    again = router_class(kind).load(tmp_path, router.models, router.params)
    np.testing.assert_allclose(again.predict(test.embeddings), pred, atol=1e-6)


def test_unobserved_cells_do_not_count_and_ipw_weights_do(synthetic) -> None:
    train, _ = synthetic
    q = train.quality.copy()
    q[:, 1] = np.nan  # "b" never observed: its prediction is its (default) prior
    data = TrainingData(train.embeddings, q, train.models)
    knn = router_class("knn").fit(data, ctx=FitContext())
    assert np.allclose(knn.predict(train.embeddings[:5])[:, 1], 0.5)
    w = np.ones_like(train.quality)
    w[:, 0] = 3.0
    weighted = TrainingData(train.embeddings, train.quality, train.models, weights=w)
    assert weighted.priors() == pytest.approx(train.priors())


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(RouterError, match="unknown parameter"):
        router_class("knn")(("a", "b"), {"kk": 3})
    with pytest.raises(RouterError, match="unknown router type"):
        router_class("forest")
    assert set(ROUTER_TYPES) == {"knn", "svm", "mlp", "mf", "bert"}


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "knn.npz",
        keys=np.array([object()], dtype=object),
        quality=np.zeros(1),
        weights=np.zeros(1),
        priors=np.zeros(1),
    )
    with pytest.raises(ValueError, match="allow_pickle"):
        router_class("knn").load(tmp_path, ("a",), {})


def test_skops_file_with_foreign_types_is_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.ensemble import RandomForestRegressor

    sio.dump(
        {"estimators": [RandomForestRegressor(n_estimators=1)], "priors": np.zeros(1)},
        tmp_path / "svm.skops",
    )
    with pytest.raises(RouterError, match="outside the allowlist"):
        router_class("svm").load(tmp_path, ("a",), {})
    assert pickle  # the format is never pickle: this import only documents what is refused
    assert io


def test_bert_refuses_training_without_text(synthetic) -> None:
    train, _ = synthetic
    with pytest.raises(RouterError, match="needs the query text"):
        router_class("bert").fit(train, ctx=FitContext())
