"""kNN router: a query's expected quality per model is the similarity-weighted mean quality
of its k most similar training queries, by cosine similarity of their feature vectors.

Defaults (k = 100, weights = similarity⁴) come from ``routeiq eval`` over GSM8K, MT-Bench and
LLMRouter's 9 models on the static + sketch features: a sharp weighting lets a large k
average over many neighbours while the nearest few dominate (docs/routing.md has the numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from routeiq.routing.routers.base import (
    F32,
    F64,
    FitContext,
    Router,
    RouterError,
    TrainingData,
    load_npz,
)

_FILE = "knn.npz"


class KNNRouter(Router):
    kind = "knn"
    default_params: ClassVar[Mapping[str, Any]] = {
        "k": 100,
        "weighting": "distance",  # "distance": weight = similarity ** power; "uniform"
        "power": 4.0,
        "max_examples": 100_000,  # newest examples kept (bounds bundle size and latency)
        "chunk": 4096,  # queries per similarity block at prediction time
    }

    def __init__(
        self,
        models: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        keys: F32 | None = None,
        quality: F64 | None = None,
        weights: F64 | None = None,
        priors: F64 | None = None,
    ) -> None:
        super().__init__(models, params)
        if self.params["weighting"] not in {"distance", "uniform"}:
            raise RouterError(
                f"knn: weighting must be distance or uniform, got {self.params['weighting']!r}"
            )
        if int(self.params["k"]) < 1:
            raise RouterError("knn: k must be at least 1")
        self.keys = keys if keys is not None else np.zeros((0, 0), np.float32)
        self.quality = quality if quality is not None else np.zeros((0, len(self.models)))
        self.weights = weights if weights is not None else np.ones_like(self.quality)
        self.priors = priors if priors is not None else np.full(len(self.models), 0.5)

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        router = cls(data.models, params)
        keep = int(router.params["max_examples"])
        if len(data) > keep:
            order = (
                np.argsort(data.event_times, kind="stable")
                if data.event_times is not None
                else np.arange(len(data))
            )
            data = data.subset(order[-keep:])
        router.keys = data.embeddings.astype(np.float32)
        router.quality = data.quality.astype(np.float64)
        router.weights = data.sample_weights()
        router.priors = data.priors()
        ctx.info["examples"] = len(data)
        ctx.info["device"] = "cpu"
        return router

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        n = embeddings.shape[0]
        out = np.empty((n, len(self.models)), dtype=np.float64)
        if self.keys.shape[0] == 0:
            out[:] = self.priors
            return out
        k = min(int(self.params["k"]), self.keys.shape[0])
        q = np.nan_to_num(self.quality)
        w_obs = self.weights
        chunk = int(self.params["chunk"])
        keys = self.keys.astype(np.float32, copy=False)
        for start in range(0, n, chunk):
            block = embeddings[start : start + chunk].astype(np.float32, copy=False)
            sims = block @ keys.T  # (b, N)
            if k < sims.shape[1]:
                top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(sims.shape[1]), (sims.shape[0], k))
            s = np.take_along_axis(sims, top, axis=1).astype(np.float64)
            if self.params["weighting"] == "distance":
                nw = np.clip(s, 1e-6, None) ** float(self.params["power"])
            else:
                nw = np.ones_like(s)
            cw = nw[:, :, None] * w_obs[top]  # (b, k, m): neighbour weight × observation weight
            total = cw.sum(1)
            mean = (cw * q[top]).sum(1) / np.maximum(total, 1e-12)
            out[start : start + chunk] = np.where(total > 0, mean, self.priors)
        return out

    def save(self, folder: Path) -> list[str]:
        # float32 keys: float16 would halve the bundle but can change neighbour sets, and the
        # served router must score exactly as the evaluated one.
        np.savez(
            folder / _FILE,
            keys=self.keys.astype(np.float32),
            quality=self.quality.astype(np.float32),
            weights=self.weights.astype(np.float32),
            priors=self.priors.astype(np.float64),
        )
        return [_FILE]

    @classmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        arrays = load_npz(folder / _FILE)
        return cls(
            models,
            params,
            keys=arrays["keys"].astype(np.float32),
            quality=arrays["quality"].astype(np.float64),
            weights=arrays["weights"].astype(np.float64),
            priors=arrays["priors"].astype(np.float64),
        )
