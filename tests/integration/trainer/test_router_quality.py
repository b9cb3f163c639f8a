"""Every router type beats a random router on held-out GSM8K decisions, read from shards.

The shards hold GSM8K (contaminated prompts dropped) as labelled decisions in a seeded random
time order (seed 0, so the 50/50 time split equals ``RoutingDataset.split(seed=0)``); the
trainer's own loader reads them from S3, de-duplicates and splits them by time. Each router
trains on the older half with its default parameters (BERT: see below) and a fixed seed, and
must beat the mean APGR of 20 seeded random routers on the newer half by ``MARGIN``.

Measured on this split: kNN 0.638, SVM 0.642, MLP 0.648, MF 0.630, BERT (1 epoch) 0.630,
random 0.492. GSM8K's routing signal is weak and split-dependent: on other seeds the same
routers measure 0.53-0.60 (seed 11: MLP 0.543, MF 0.529 against 0.502), so the margin of 0.05
holds on this fixed split, not on every split.
"""

from __future__ import annotations

import pytest
from routeiq.routing.assessment import evaluate, predict, random_baseline
from routeiq.routing.datasets import GPT4, MIXTRAL
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.routing.prepare import PreparedData
from routeiq.routing.routers import FitContext, TrainingData, router_class
from routeiq.storage import ArtifactStore
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.requests import TrainRequest, resolve_options
from routeiq_trainer.data import DataLoader

pytestmark = pytest.mark.integration

MARGIN = 0.05
SEED = 0
# BERT fine-tuning on a 2-core CPU is slow (~6 min for 650 queries × 3 epochs), so the test
# uses one epoch at a higher learning rate on 64-token inputs (GSM8K questions average ~55
# tokens): about a minute of training, enough to learn "harder maths → strong model".
BERT_PARAMS = {"epochs": 1, "lr": 1e-4, "head_lr": 5e-3, "max_length": 64}


@pytest.fixture(scope="module")
def held_out(gsm8k_shards, minio_client, trainer_cache, signing_key) -> PreparedData:
    bucket, keys, _rows = gsm8k_shards
    settings = TrainerSettings.load({}, signing_key=signing_key)
    request = TrainRequest(
        request_id="router-quality",
        model_name="router-quality",
        requested_by="test",
        requested_at_ms=0,
        shard_manifests=tuple(keys),
        params={"validation_fraction": "0.5", "seed": str(SEED)},
    )
    loader = DataLoader(
        store=ArtifactStore(minio_client),
        shards_bucket=bucket,
        embeddings=FeatureStore(cache_dir=trainer_cache, featurizer=minilm_pipeline()),
        prices={},
        min_train_examples=500,
        min_validation_examples=500,
    )
    return loader.load(request, resolve_options(request, settings))


def _check(kind: str, data: PreparedData, train: TrainingData, params: dict) -> None:
    router = router_class(kind).fit(train, params, ctx=FitContext(seed=SEED))
    result = evaluate(kind, predict(router, data), data, cost_weight=0.0)
    baseline = random_baseline(data, seed=SEED, cost_weight=0.0)
    print(f"{kind}: APGR {result.metrics['apgr']:.3f} vs random {baseline.metrics['apgr']:.3f}")
    assert result.metrics["apgr"] > baseline.metrics["apgr"] + MARGIN
    assert result.metrics["cpt50"] < baseline.metrics["cpt50"]


def test_the_split_is_by_time_with_no_decision_on_both_sides(held_out, gsm8k_shards) -> None:
    rows = gsm8k_shards[2]
    assert len(held_out.train) + len(held_out.validation) == len(rows)  # 25 repeats dropped
    assert held_out.train.event_times is not None
    assert held_out.validation.event_times is not None
    assert held_out.train.event_times.max() < held_out.validation.event_times.min()
    train_times = set(held_out.train.event_times.tolist())
    by_time = {int(r["event_time"].timestamp() * 1000): r["decision_id"] for r in rows}
    train_ids = {by_time[t] for t in train_times}
    assert not train_ids & set(held_out.validation_ids)


@pytest.mark.parametrize("kind", ["knn", "svm", "mlp", "mf"])
def test_every_router_type_beats_random_on_held_out_gsm8k(kind, held_out) -> None:
    _check(kind, held_out, held_out.train, {})


@pytest.mark.slow
def test_the_bert_router_beats_random_on_the_same_split(held_out, gsm8k, gsm8k_shards) -> None:
    # Shards never carry text, so BERT reads the prompts of the same training decisions from
    # the dataset file (event time → decision id → prompt) and is scored on the same
    # held-out decisions.
    ds, _ = gsm8k
    text = {f"gsm8k-{rid}": prompt for rid, prompt in zip(ds.ids, ds.prompts, strict=True)}
    decision_at = {
        int(r["event_time"].timestamp() * 1000): r["decision_id"] for r in gsm8k_shards[2]
    }
    train, validation = held_out.train, held_out.validation
    assert train.event_times is not None
    train.texts = [text[decision_at[int(t)]] for t in train.event_times]
    validation.texts = [text[d] for d in held_out.validation_ids]
    try:
        _check("bert", held_out, train, BERT_PARAMS)
    finally:
        train.texts = validation.texts = None


def test_strong_and_weak_are_inferred_from_the_logged_costs(held_out) -> None:
    # The loader had no price table and no strong/weak setting: GPT-4 costs more per request.
    assert (held_out.strong, held_out.weak) == (GPT4, MIXTRAL)
    costs = held_out.validation_costs
    assert costs[:, held_out.strong_index].mean() > 10 * costs[:, held_out.weak_index].mean()
