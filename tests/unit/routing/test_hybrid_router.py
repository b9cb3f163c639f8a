"""The hybrid router (Ding et al. 2024): the paper's relaxed labels and choice of t on
hand-computed examples, a score that ranks easy queries for the cheap model, a signed bundle
round trip served by the threshold strategy, and invalid settings refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq.routing.bundle import (
    Candidate,
    HmacKey,
    LoadedBundle,
    feature_spec,
    run_probes,
    verify_bundle,
    write_bundle,
)
from routeiq.routing.evaluation import router_quality
from routeiq.routing.featurizer import load_featurizer, minilm_pipeline
from routeiq.routing.routers import FitContext, RouterError, TrainingData
from routeiq.routing.routers.hybrid import (
    HybridRouter,
    answer_pairs,
    choose_relaxation,
    mean_pairwise_difference,
)
from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput
from routeiq.routing.strategies.threshold import ThresholdStrategy

# Small and quick: the network is the MLP router's, tested at full size with the others.
FAST = {"epochs": 12, "hidden": 64, "strong": "b"}
KEY = HmacKey(b"h" * 32)


def _one_pair_each(quality: list[list[float]]) -> TrainingData:
    q = np.array(quality, dtype=float)
    x = np.eye(len(q), 8, dtype=np.float32)  # distinct queries
    return TrainingData(embeddings=x, quality=q, models=("cheap", "strong"))


def test_relaxed_labels_and_t_match_the_paper_by_hand() -> None:
    # gaps q_strong - q_cheap: 0.4, 0.1, -0.3, 0.8
    data = _one_pair_each([[0.5, 0.9], [0.8, 0.9], [0.9, 0.6], [0.2, 1.0]])
    group = np.arange(4)
    pairs = answer_pairs(group, data.quality, data.sample_weights(), 0, 1)
    np.testing.assert_allclose(pairs.gap, [0.4, 0.1, -0.3, 0.8])
    by_t = {t: pairs.labels(t)[0] for t in (0.0, 0.1, 0.4, 0.8)}
    np.testing.assert_array_equal(by_t[0.0], [0, 0, 1, 0])
    np.testing.assert_array_equal(by_t[0.1], [0, 1, 1, 0])
    np.testing.assert_array_equal(by_t[0.4], [1, 1, 1, 0])
    np.testing.assert_array_equal(by_t[0.8], [1, 1, 1, 1])
    # Average pairwise |y_i - y_k| over all 16 ordered pairs: 6/16, 8/16, 6/16, 0.
    ones = np.ones(4)
    spreads = [mean_pairwise_difference(by_t[t], ones) for t in (0.0, 0.1, 0.4, 0.8)]
    np.testing.assert_allclose(spreads, [0.375, 0.5, 0.375, 0.0])
    assert choose_relaxation(pairs, 1.0) == pytest.approx(0.1)
    # The search never goes beyond its limit: up to 0.05 only t = 0 is allowed.
    assert choose_relaxation(pairs, 0.05) == 0.0
    relabelled, relaxation, ref = HybridRouter(data.models, {"strong": "strong"}).relabel(
        data, FitContext()
    )
    assert ref == 1
    assert relaxation.tolist() == pytest.approx([0.1, 0.0])
    # Queries come back in np.unique's order of their vectors: match them by vector.
    order = [
        int(np.flatnonzero((data.embeddings == row).all(1))[0]) for row in relabelled.embeddings
    ]
    np.testing.assert_array_equal(relabelled.quality[:, 0], by_t[0.1][order])
    assert np.isnan(relabelled.quality[:, 1]).all()  # the reference is never a target


def test_a_query_graded_several_times_gets_the_probabilistic_label() -> None:
    # One query graded three times (no row with both answers), and one other query.
    x = np.zeros((4, 8), dtype=np.float32)
    x[3, 0] = 1.0
    q = np.array([[0.5, np.nan], [0.9, 0.7], [np.nan, 0.6], [0.3, 0.3]])
    data = TrainingData(embeddings=x, quality=q, models=("cheap", "strong"))
    router = HybridRouter(data.models, {"strong": "strong", "relaxation": 0.1})
    relabelled, _, _ = router.relabel(data, FitContext())
    # Pairs {0.5, 0.9} x {0.7, 0.6}: gaps 0.2, 0.1, -0.2, -0.3: three of four within t = 0.1.
    assert len(relabelled) == 2
    repeated = int(np.flatnonzero(relabelled.embeddings[:, 0] == 0.0)[0])
    assert relabelled.quality[repeated, 0] == pytest.approx(0.75)
    assert relabelled.quality[1 - repeated, 0] == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.1, 5.0)), min_size=1, max_size=30
    ),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_labels_only_grow_with_the_relaxation(rows, t1, t2) -> None:
    q = np.array([[a, b] for a, b, _ in rows])
    w = np.array([[c, 1.0] for _, _, c in rows])
    pairs = answer_pairs(np.arange(len(rows)), q, w, 0, 1)
    low, high = sorted((t1, t2))
    assert np.all(pairs.labels(low)[0] <= pairs.labels(high)[0])
    assert 0.0 <= mean_pairwise_difference(pairs.labels(low)[0], pairs.labels(low)[1]) <= 0.5


def test_it_learns_when_the_cheap_model_suffices_and_round_trips(synthetic, tmp_path) -> None:
    train, test = synthetic  # "a" is right on one cluster, "b" on the other
    ctx = FitContext(seed=0)
    router = HybridRouter.fit(train, FAST, ctx=ctx)
    assert ctx.info["reference"] == "b"
    assert ctx.info["device"] in {"cpu", "cuda"}
    pred = router.predict(test.embeddings)
    assert np.all(pred[:, 1] == 1.0)  # the reference is always within t of itself
    # The cheap model "suffices" exactly where it is right and "b" is not (10% label noise).
    suffices = test.quality[:, 0] >= test.quality[:, 1]
    assert pred[suffices, 0].mean() > pred[~suffices, 0].mean() + 0.5
    # Its win score 1 - p sweeps like a router, well above random (0.5).
    quality = router_quality(pred[:, 1] - pred[:, 0], test.quality[:, 1], test.quality[:, 0])
    assert quality.apgr > 0.6
    files = router.save(tmp_path)
    assert files == ["hybrid.safetensors"]
    again = HybridRouter.load(tmp_path, router.models, router.params)
    np.testing.assert_array_equal(again.predict(test.embeddings), pred)


def test_a_signed_bundle_serves_through_the_threshold_strategy(synthetic, tmp_path) -> None:
    train, test = synthetic
    router = HybridRouter.fit(train, FAST, ctx=FitContext(seed=0))
    win = router.predict(train.embeddings) @ np.array([-1.0, 1.0])
    folder = tmp_path / "bundle"
    write_bundle(
        router,
        folder,
        name="h",
        version="1",
        candidates=[Candidate("a"), Candidate("b")],
        signer=KEY,
        featurizer=minilm_pipeline(),
        calibration={"win_score_quantiles": np.quantile(win, np.linspace(0, 1, 101)).tolist()},
    )
    manifest = verify_bundle(folder, KEY)
    assert manifest.router_type == "hybrid"
    assert manifest.params["relaxation"] == "auto"
    loaded = HybridRouter.load(folder, manifest.models, manifest.params)
    bundle = LoadedBundle(manifest, loaded, folder, load_featurizer(folder, feature_spec(manifest)))
    assert run_probes(bundle) < 1e-9
    holder = BundleHolder()
    holder.swap(bundle, at=0.0)
    strategy = ThresholdStrategy(
        "t", {"strong": "b", "weak": "a", "target_strong_pct": 50}, holder=holder
    )
    options = [ModelOption("a"), ModelOption("b")]
    picks = np.array(
        [
            strategy.choose(RouteInput(f"q{i}", embed=lambda _t, v=v: v), options).model
            for i, v in enumerate(test.embeddings)
        ]
    )
    suffices = test.quality[:, 0] >= test.quality[:, 1]
    assert np.mean(picks[suffices] == "a") > 0.8
    assert np.mean(picks[~suffices] == "b") > 0.8


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"relaxation": -0.1}, "relaxation must be"),
        ({"relaxation": 1.5}, "relaxation must be"),
        ({"relaxation": "max"}, "relaxation must be"),
        ({"relaxation": True}, "relaxation must be"),
        ({"max_relaxation": 2.0}, "max_relaxation must be"),
        ({"strong": "c"}, "strong must be one of"),
        ({"temperature": 1.0}, "unknown parameter"),
    ],
)
def test_invalid_parameters_are_refused(params, message) -> None:
    with pytest.raises(RouterError, match=message):
        HybridRouter(("a", "b"), params)


def test_it_refuses_data_without_both_answers_to_a_query(synthetic) -> None:
    train, _ = synthetic
    q = train.quality.copy()
    q[::2, 0] = np.nan  # bandit feedback: one answer per query, never both
    q[1::2, 1] = np.nan
    bandit = TrainingData(train.embeddings, q, train.models)
    with pytest.raises(RouterError, match="no query was graded for both"):
        HybridRouter.fit(bandit, FAST, ctx=FitContext())
    with pytest.raises(RouterError, match="at least two candidates"):
        HybridRouter(("a",))
    with pytest.raises(RouterError, match="not trained"):
        HybridRouter(("a", "b")).predict(train.embeddings[:2])
