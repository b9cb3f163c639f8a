"""``generate_synthetic``: simulated production traffic from a benchmark, as training shards.

A cold start has no traffic to learn from. This replays a shipped benchmark (every prompt
with each candidate's recorded grade) as if a uniform-random router had served it: each
prompt becomes one decision whose served model is drawn uniformly (propensity 1/m, so the
trainer's off-policy estimates stay unbiased), labelled with that model's recorded grade.
A ``shadow_fraction`` of the decisions also carry every other candidate's grade, as shadow
sampling would give them. The rows are written through ``routeiq.shards`` exactly as the
labeler writes them, so ``train`` (``-P manifests=...`` or no manifests at all) reads them
like real traffic.

Rows say what they are: ``strategy="synthetic-uniform"``, ``quality_source="synthetic"``,
``requested_model="synthetic"``. Decision ids and shard keys are functions of (dataset,
seed, start, spacing), so running it twice rewrites the same objects rather than adding rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from routeiq.routing.datasets import ModelPrice, RoutingDataset
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.prepare import dataset_costs, merge_repeats, prompt_tokens
from routeiq.routing.querykey import query_key as keyed
from routeiq.shards import ShardManifest
from routeiq.storage import ArtifactStore

from routeiq_trainer.errors import RequestError
from routeiq_trainer.prepare import ShardLayout, write_rows

STRATEGY = "synthetic-uniform"
QUALITY_SOURCE = "synthetic"
# Decision ids: uuid5 in a namespace of our own, so they never collide with real uuid4 ids.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://routeiq.dev/synthetic")


@dataclass(frozen=True, kw_only=True)
class SyntheticPlan:
    """How to turn a benchmark into traffic (see the module docstring)."""

    seed: int = 0
    start_ms: int
    spacing_ms: int = 1000
    window_ms: int = 3_600_000
    partitions: int = 1
    shadow_fraction: float = 0.0
    cost_weight: float = 0.0
    limit: int = 0  # 0: every prompt

    def __post_init__(self) -> None:
        if not 0.0 <= self.shadow_fraction <= 1.0:
            raise RequestError(f"shadow_fraction must be in [0, 1], got {self.shadow_fraction}")
        if self.spacing_ms < 1 or self.window_ms < 1 or self.partitions < 1 or self.limit < 0:
            raise RequestError("spacing, window and partitions must be positive, limit ≥ 0")
        if self.cost_weight < 0:
            raise RequestError(f"cost_weight must be ≥ 0, got {self.cost_weight}")


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def synthetic_rows(
    ds: RoutingDataset,
    embeddings: np.ndarray,
    *,
    features_id: str,
    prices: Mapping[str, ModelPrice],
    plan: SyntheticPlan,
    query_key: bytes | None = None,
) -> list[dict[str, Any]]:
    """One shard row per prompt of ``ds`` (repeats merged; ``embeddings`` row-aligned with
    ``ds``). Prompts a model has no grade for are served only by models that have one. With
    ``query_key``, each row carries its prompt's key, as a gateway with that key logs it."""
    if len(embeddings) != len(ds):
        raise RequestError(f"{len(embeddings)} embeddings for {len(ds)} prompts")
    rng = np.random.default_rng(plan.seed)
    order = rng.permutation(len(ds))
    if plan.limit:
        order = order[: plan.limit]
    costs = dataset_costs(ds, {**ds.prices, **dict(prices)})
    tokens = prompt_tokens(ds.prompts)
    models = list(ds.models)
    rows: list[dict[str, Any]] = []
    for position, i in enumerate(order):
        graded = [j for j in range(len(models)) if np.isfinite(ds.scores[i, j])]
        if not graded:
            continue
        served = int(rng.choice(graded))
        propensity = 1.0 / len(graded)
        shadows = [j for j in graded if j != served] if rng.random() < plan.shadow_fraction else []
        event_ms = plan.start_ms + position * plan.spacing_ms
        quality = float(ds.scores[i, served])
        cost = float(costs[i, served])
        outcomes = [served, *shadows]
        rows.append(
            {
                "decision_id": str(uuid.uuid5(NAMESPACE, f"{ds.name}/{ds.ids[i]}/{plan.seed}")),
                "event_time": _utc(event_ms),
                "window_start": _utc(event_ms - event_ms % plan.window_ms),
                "late": False,
                "embedding": embeddings[i],
                "embedding_model": features_id,
                "query_length": len(ds.prompts[i]),
                "domain": None,
                "requested_model": "synthetic",
                "strategy": STRATEGY,
                "strategy_version": None,
                "router_version": None,
                "ab_arm": None,
                "selected_model": models[served],
                "exploration": True,
                "propensity": propensity,
                "candidate_models": [models[j] for j in graded],
                "candidate_propensities": [propensity] * len(graded),
                "status": "SUCCESS",
                "latency_ms": None,
                "upstream_latency_ms": None,
                "input_tokens": int(tokens[i]),
                "output_tokens": None,
                "cost_usd": cost,
                "quality": quality,
                "quality_source": QUALITY_SOURCE,
                "reward": quality - plan.cost_weight * cost,
                "outcome_models": [models[j] for j in outcomes],
                "outcome_qualities": [float(ds.scores[i, j]) for j in outcomes],
                "outcome_costs": [float(costs[i, j]) for j in outcomes],
                "feedback_count": 0,
                "query_key": keyed(query_key, ds.prompts[i]) if query_key else None,
            }
        )
    return rows


def generate(
    ds: RoutingDataset,
    *,
    features: FeatureStore,
    store: ArtifactStore,
    bucket: str,
    prices: Mapping[str, ModelPrice],
    plan: SyntheticPlan,
    query_key: bytes | None = None,
) -> dict[str, ShardManifest]:
    """Featurise ``ds`` with the trainer's pipeline and write its synthetic traffic as
    shards, one per (window, partition); the manifests by key, oldest window first."""
    ds = merge_repeats(ds)
    if len(ds) == 0 or len(ds.models) < 2:
        raise RequestError(f"dataset {ds.name}: {len(ds)} prompts, {len(ds.models)} models")
    vectors = features.embed(ds.prompts)
    rows = synthetic_rows(
        ds,
        vectors,
        features_id=features.features_id,
        prices=prices,
        plan=plan,
        query_key=query_key,
    )
    return write_rows(
        store, bucket, rows, ShardLayout(window_ms=plan.window_ms, partitions=plan.partitions)
    )
