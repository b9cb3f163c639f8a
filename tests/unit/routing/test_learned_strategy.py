"""The learned strategy over N candidates: λ calibrated on live traffic to an operator target,
propensities for every candidate, a fresh calibration for every new router."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from routeiq.errors import ConfigError
from routeiq.routing.bundle import Candidate, HmacKey, load_bundle, write_bundle
from routeiq.routing.costpolicy import Target, calibrate, cost_scale, outcome
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.routing.routers import FitContext, TrainingData, router_class
from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput

KEY = HmacKey(b"k" * 32)
MODELS = ("big", "mid", "small")
OPTIONS = [
    ModelOption("big", input_price=10.0, output_price=30.0, quality_rank=0.9),
    ModelOption("mid", input_price=1.0, output_price=3.0, quality_rank=0.7),
    ModelOption("small", input_price=0.1, output_price=0.3, quality_rank=0.4),
]


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three clusters; on cluster c, models c.. are right (harder clusters need bigger)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(42).normal(size=(3, 384))
    side = rng.integers(0, 3, n)
    x = centers[side] + rng.normal(scale=0.7, size=(n, 384))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    need = 2 - side  # cluster 0: only big; cluster 2: every model
    q = (np.arange(3)[None, :] <= need[:, None]).astype(float)
    q = np.where(rng.random(q.shape) < 0.1, 1 - q, q)
    return x, q


def _bundle(tmp_path: Path, version: str, *, sample: bool = True):
    x, q = _clusters(600, 0)
    router = router_class("knn").fit(
        TrainingData(embeddings=x, quality=q, models=MODELS), {"k": 30}, ctx=FitContext()
    )
    val_x, _ = _clusters(300, 1)
    pred = router.predict(val_x)
    calibration = (
        {"policy_sample": {"quality": pred.tolist(), "tokens": [300.0] * len(pred)}}
        if sample
        else {}
    )
    folder = tmp_path / version
    write_bundle(
        router,
        folder,
        name="r",
        version=version,
        candidates=[Candidate(m) for m in MODELS],
        signer=KEY,
        featurizer=minilm_pipeline(),
        calibration=calibration,
    )
    return load_bundle(folder, KEY)


def _engine(holder: BundleHolder, params: dict, epsilon: float = 0.0) -> RoutingEngine:
    registry = StrategyRegistry(holder=holder)
    registry.register("cheapest", "cheapest")
    registry.register("learned", "learned", {"fallback": "cheapest", **params})
    return RoutingEngine(registry, RoutingConfig(default="learned", epsilon=epsilon))


def _traffic(engine: RoutingEngine, n: int, seed: int) -> list[tuple[str, float]]:
    x, _ = _clusters(n, seed)
    out = []
    for i in range(n):
        text = "q" * 1200  # 300 estimated tokens, as in the bundle's sample
        request = RouteInput(text, embed=lambda _t, v=x[i]: v)
        decision = engine.route(request, OPTIONS)
        price = {o.name: o for o in OPTIONS}[decision.selected]
        out.append((decision.selected, price.est_cost(300)))
    return out


@pytest.fixture
def holder(tmp_path) -> BundleHolder:
    h = BundleHolder()
    h.swap(_bundle(tmp_path, "v1"), at=0.0)
    return h


def test_a_cost_target_holds_on_live_traffic_and_uses_every_candidate(holder) -> None:
    always_big = OPTIONS[0].est_cost(300) * 1000
    target = 0.3 * always_big
    engine = _engine(holder, {"target": {"cost_per_1k_usd": target}, "recalibrate_every": 50})
    picks = _traffic(engine, 1500, seed=3)
    live = picks[500:]
    cost_per_1k = 1000 * np.mean([c for _, c in live])
    assert cost_per_1k == pytest.approx(target, rel=0.15)
    assert {m for m, _ in live} == set(MODELS)  # a real mix, not a pair
    strategy = engine.registry.get("learned")
    described = strategy.describe()["calibration"]
    assert described["target"] == {"cost_per_1k_usd": target}
    assert described["lambda"] > 0


def test_the_bundle_sample_calibrates_before_live_traffic(holder) -> None:
    always_big = OPTIONS[0].est_cost(300) * 1000
    engine = _engine(holder, {"target": {"cost_per_1k_usd": 0.3 * always_big}})
    first = _traffic(engine, 60, seed=4)
    # The very first requests already spend near the target, not at λ = 0 (always big).
    assert 1000 * np.mean([c for _, c in first]) < 0.6 * always_big


def test_a_quality_floor_spends_only_what_the_floor_needs(holder) -> None:
    engine = _engine(holder, {"target": {"quality_floor": 0.0}})
    picks = _traffic(engine, 300, seed=5)
    assert {m for m, _ in picks[100:]} == {"small"}  # any quality will do: the cheapest


def test_propensities_cover_every_candidate_and_exploration_reaches_all(holder) -> None:
    engine = _engine(holder, {"target": {"cost_per_1k_usd": 1.0}}, epsilon=0.3)
    x, _ = _clusters(400, 6)
    seen = set()
    for i in range(400):
        d = engine.route(RouteInput("q", embed=lambda _t, v=x[i]: v), OPTIONS)
        assert set(d.propensities) == set(MODELS)
        assert sum(d.propensities.values()) == pytest.approx(1.0)
        assert min(d.propensities.values()) >= 0.1 - 1e-12  # ε / K
        seen.add(d.selected)
    assert seen == set(MODELS)


def test_a_new_router_starts_a_new_calibration(holder, tmp_path) -> None:
    engine = _engine(holder, {"target": {"cost_per_1k_usd": 1.0}, "recalibrate_every": 10})
    _traffic(engine, 50, seed=7)
    strategy = engine.registry.get("learned")
    assert strategy.describe()["calibration"]["live_requests"] == 50
    holder.swap(_bundle(tmp_path, "v2"), at=1.0)
    _traffic(engine, 5, seed=8)
    described = strategy.describe()["calibration"]
    assert described["router_version"] == "v2"
    assert described["live_requests"] == 5


def test_calibration_matches_the_library_solver(holder) -> None:
    """The strategy's λ is what ``costpolicy.calibrate`` finds on the same rows."""
    bundle = holder.get()
    target = {"cost_per_1k_usd": 0.2 * OPTIONS[0].est_cost(300) * 1000}
    engine = _engine(holder, {"target": target, "window": 400, "recalibrate_every": 1000})
    _traffic(engine, 400, seed=9)  # exactly one window
    strategy = engine.registry.get("learned")
    strategy.recalibrate(bundle)  # on the window alone (more live rows than MIN_LIVE)
    lam, scale = strategy.calibration()
    x, _ = _clusters(400, 9)
    pred = bundle.router.predict(x)
    costs = np.array([[o.est_cost(300) for o in OPTIONS]] * 400)
    assert scale == pytest.approx(cost_scale(costs))
    spent, _ = outcome(pred, costs, lam, scale)
    assert 1000 * spent <= target["cost_per_1k_usd"] * (1 + 1e-9)
    assert lam == pytest.approx(calibrate(pred, costs, Target.parse(target), scale=scale))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"target": {"cost_per_1k_usd": 1}, "cost_weight": 1.0}, "not both"),
        ({"target": {"budget": 1}}, "unknown target"),
        ({"window": 0}, "window"),
        ({"recalibrate_every": True}, "recalibrate_every"),
        ({"cost_weight": -1}, ">= 0"),
    ],
)
def test_bad_parameters_are_refused(holder, params, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _engine(holder, params)


def test_without_a_router_the_fallback_serves() -> None:
    engine = _engine(BundleHolder(), {"target": {"cost_per_1k_usd": 1.0}})
    decision = engine.route(RouteInput("hello", embed=lambda _t: np.zeros(384)), OPTIONS)
    assert decision.selected == "small"
    assert "no learned router loaded" in decision.reason
