"""Synthetic routing data for the trainer's unit tests (no network, no model weights)."""

from __future__ import annotations

import numpy as np
from routeiq.routing.datasets import ModelPrice
from routeiq.routing.prepare import LoggedPolicy, PreparedData
from routeiq.routing.routers import TrainingData


def clustered(n: int, *, seed: int = 0, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two clusters: the weak model is right on cluster 0, only the strong one on cluster 1."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(2, 384))
    side = rng.integers(0, 2, n)
    x = centers[side] + rng.normal(scale=0.8, size=(n, 384))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    strong = np.ones(n)
    weak = (side == 0).astype(float)
    q = np.stack([strong, weak], axis=1)
    flip = rng.random(q.shape) < noise
    return x, np.where(flip, 1 - q, q)


def prepared(n_train: int = 300, n_val: int = 200, *, seed: int = 0) -> PreparedData:
    x, q = clustered(n_train + n_val, seed=seed)
    models = ("strong", "weak")
    data = TrainingData(
        embeddings=x, quality=q, models=models, event_times=np.arange(len(x), dtype=np.int64)
    )
    tr, va = np.arange(n_train), np.arange(n_train, n_train + n_val)
    rng = np.random.default_rng(seed + 1)
    actions = rng.integers(0, 2, n_val).astype(np.int64)
    costs = np.tile([0.01, 0.001], (n_val, 1))
    return PreparedData(
        source="synthetic",
        models=models,
        train=data.subset(tr),
        validation=data.subset(va),
        validation_ids=[f"d{i}" for i in va],
        validation_costs=costs,
        logged=LoggedPolicy(
            actions, np.full(n_val, 0.5), q[va][np.arange(n_val), actions], "logged"
        ),
        strong="strong",
        weak="weak",
        prices={"strong": ModelPrice(10, 30), "weak": ModelPrice(0.6, 0.6)},
        rows_read=n_train + n_val,
    )
