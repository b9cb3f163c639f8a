"""Small synthetic routing problems, embedded once per session."""

from __future__ import annotations

import numpy as np
import pytest
from routeiq.routing.routers import TrainingData


@pytest.fixture(scope="session")
def synthetic() -> tuple[TrainingData, TrainingData]:
    """Two clusters on the unit sphere: model "a" is right on one, model "b" on the other."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(2, 384))

    def make(n: int) -> TrainingData:
        side = rng.integers(0, 2, n)
        x = centers[side] + rng.normal(scale=0.8, size=(n, 384))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        q = np.stack([side == 0, side == 1], axis=1).astype(float)
        flip = rng.random(q.shape) < 0.1
        q = np.where(flip, 1 - q, q)
        return TrainingData(embeddings=x, quality=q, models=("a", "b"))

    return make(400), make(200)
