"""Build, sign, upload and announce router bundles from tests and benchmarks.

Uses the trainer's own upload and announcement code, so what the tests publish is exactly
what the trainer publishes; only the training data is chosen here (GSM8K or synthetic).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Producer
from routeiq.contracts.serde import AvroSerde
from routeiq.routing.bundle import Candidate, Signer, read_signature, write_bundle
from routeiq.routing.datasets import GPT4, MIXTRAL, ROUTELLM_PRICES, load_gsm8k, load_llmrouter
from routeiq.routing.evaluation import router_quality
from routeiq.routing.featurizer import Featurizer, minilm_pipeline
from routeiq.routing.routers import FitContext, KNNRouter, TrainingData
from routeiq.storage import ArtifactStore
from routeiq_trainer.announce import Announcer
from routeiq_trainer.bundles import BundleLocation, BundleStore

CANDIDATES = [
    Candidate(GPT4, ROUTELLM_PRICES[GPT4].input_per_m, ROUTELLM_PRICES[GPT4].output_per_m),
    Candidate(MIXTRAL, ROUTELLM_PRICES[MIXTRAL].input_per_m, ROUTELLM_PRICES[MIXTRAL].output_per_m),
]


@cache
def featurizer() -> Featurizer:
    """The MiniLM pipeline (384-d, packaged: no files to build)."""
    return minilm_pipeline()


def featurize(texts: Sequence[str]) -> Any:
    return featurizer().encode(list(texts))


@cache
def gsm8k_embeddings(limit: int) -> tuple[Any, Any]:
    """Embeddings and (strong, weak) quality of the first ``limit`` GSM8K prompts."""
    ds = load_gsm8k()
    prompts = ds.prompts[:limit]
    return featurize(prompts), ds.scores[:limit]


def knn_bundle(
    folder: Path,
    *,
    name: str,
    version: str,
    signer: Signer,
    examples: int = 200,
    k: int = 20,
    synthetic: int = 0,
    seed: int = 0,
) -> Path:
    """A signed kNN bundle over GSM8K prompts (or ``synthetic`` random examples, for size)."""
    if synthetic:
        rng = np.random.default_rng(seed)
        emb = rng.normal(size=(synthetic, 384)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        quality = rng.integers(0, 2, size=(synthetic, 2)).astype(float)
    else:
        emb, quality = gsm8k_embeddings(examples)
    data = TrainingData(embeddings=emb, quality=quality, models=(GPT4, MIXTRAL))
    router = KNNRouter.fit(data, {"k": k}, ctx=FitContext(seed=seed))
    win = router.predict(emb)
    scores = win[:, 0] - win[:, 1]
    quality_metrics = router_quality(scores, quality[:, 0], quality[:, 1]).as_metrics()
    write_bundle(
        router,
        folder,
        name=name,
        version=version,
        candidates=CANDIDATES,
        signer=signer,
        featurizer=featurizer(),
        metrics=quality_metrics,
        calibration={"win_score_quantiles": np.quantile(scores, np.linspace(0, 1, 101)).tolist()},
    )
    return folder


def llmrouter_bundle(
    folder: Path,
    *,
    name: str,
    version: str,
    signer: Signer,
    featurizer: Featurizer,
    cache_dir: Path | None = None,
) -> Path:
    """A signed kNN bundle over LLMRouter's 9 models, trained on dcrouter_train with the
    given feature pipeline (the library's default router), calibrated on dcrouter_test."""
    from routeiq.routing.assessment import evaluate
    from routeiq.routing.featurestore import FeatureStore
    from routeiq.routing.prepare import prepare_train_test

    train, test = load_llmrouter(split="train"), load_llmrouter(split="test")
    data = prepare_train_test(
        train,
        test,
        store=FeatureStore(cache_dir=cache_dir or folder.parent / "cache", featurizer=featurizer),
    )
    router = KNNRouter.fit(data.train, ctx=FitContext())
    pred = router.predict(data.validation.embeddings)
    result = evaluate("knn", pred, data, cost_weight=0.0)
    write_bundle(
        router,
        folder,
        name=name,
        version=version,
        candidates=[
            Candidate(m, data.prices[m].input_per_m, data.prices[m].output_per_m)
            for m in data.models
        ],
        signer=signer,
        featurizer=featurizer,
        metrics={k: v for k, v in result.metrics.items() if k in {"aiq", "quality_at_50pct_cost"}},
        calibration=result.calibration(),
    )
    return folder


def publish(
    store: ArtifactStore, bucket: str, folder: Path, *, name: str, version: str
) -> BundleLocation:
    return BundleStore(store=store, bucket=bucket).upload(folder, name=name, version=version)


def announce(
    producer: Producer,
    serde: AvroSerde,
    topic: str,
    *,
    name: str,
    version: str,
    location: BundleLocation,
    folder: Path,
    action: str = "PROMOTE",
    previous: str | None = None,
    reason: str = "test",
) -> dict[str, Any]:
    announcer = Announcer(producer=producer, serde=serde, topic=topic, announced_by="tests")
    return announcer.announce(
        model_name=name,
        version=version,
        action=action,
        router_type="knn",
        bundle=location,
        signature=read_signature(folder),
        metrics={},
        previous_version=previous,
        mlflow_run_id=None,
        mlflow_model_version=None,
        reason=reason,
    )
