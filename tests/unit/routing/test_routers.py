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
    assert set(ROUTER_TYPES) == {"knn", "svm", "mlp", "mf", "bert", "hybrid", "causallm"}


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


def test_softmax_weights_fall_off_from_the_nearest_neighbour() -> None:
    """Weights relative to the query's nearest neighbour: a query asked before counts its
    own outcome far more than similarity⁴ would, and a query far from every key still
    averages its neighbours (relative weights never all vanish)."""
    rng = np.random.default_rng(1)
    centre = rng.normal(size=16)
    keys = centre / np.linalg.norm(centre) + rng.normal(scale=0.25, size=(200, 16))
    keys = (keys / np.linalg.norm(keys, axis=1, keepdims=True)).astype(np.float32)
    quality = np.zeros((200, 2))
    quality[:, 1] = 1.0  # every neighbour: "b" right, "a" wrong ...
    quality[7] = [1.0, 0.0]  # ... except the query asked before
    data = TrainingData(keys, quality, ("a", "b"))

    def share_of_the_repeat(**params: object) -> float:
        knn = router_class("knn").fit(data, {"dims": 0, "k": 200, **params}, ctx=FitContext())
        return float(knn.predict(keys[7:8])[0, 0])  # "a" is right only on the repeat

    softmax = share_of_the_repeat(weighting="softmax", sharpness=10.0)
    power = share_of_the_repeat(weighting="distance", power=4.0)
    uniform = share_of_the_repeat(weighting="uniform")
    assert uniform == pytest.approx(1 / 200)
    assert softmax > 3 * power > 3 * uniform
    far = -keys.mean(axis=0, keepdims=True)
    knn = router_class("knn").fit(data, {"dims": 0, "k": 200}, ctx=FitContext())
    assert knn.predict(far / np.linalg.norm(far))[0, 1] > 0.9


def test_search_in_a_principal_subspace_and_the_shortlist_agree_with_exact(synthetic) -> None:
    train, test = synthetic
    exact = router_class("knn").fit(train, {"dims": 0, "coarse_dims": 0}, ctx=FitContext())
    sub = router_class("knn").fit(train, {"dims": 32}, ctx=FitContext())
    assert sub.projection is not None
    assert sub.projection.shape == (384, 32)
    assert sub.shortlist is None  # 400 keys: below exact_up_to, searched exhaustively
    listed = router_class("knn").fit(
        train, {"dims": 0, "exact_up_to": 0, "candidates": 100, "k": 50}, ctx=FitContext()
    )
    assert listed.shortlist is not None
    listed_exact = router_class("knn").fit(
        train, {"dims": 0, "coarse_dims": 0, "k": 50}, ctx=FitContext()
    )
    truth = test.quality.argmax(1)
    picks = {r: r.predict(test.embeddings).argmax(1) for r in (exact, sub, listed, listed_exact)}
    assert np.mean(picks[exact] == truth) > 0.8
    # The same choices as the exhaustive search over the full features.
    assert np.mean(picks[sub] == picks[exact]) >= 0.95
    assert np.mean(picks[listed] == picks[listed_exact]) >= 0.95


def test_an_unknown_weighting_is_refused() -> None:
    with pytest.raises(RouterError, match="weighting must be one of softmax"):
        router_class("knn")(("a", "b"), {"weighting": "gaussian"})
