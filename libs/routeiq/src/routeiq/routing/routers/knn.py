"""kNN router: a query's expected quality per model is the similarity-weighted mean quality
of its k most similar training queries, by cosine similarity of their feature vectors.

Defaults (k = 100, weights = similarity⁴) come from ``routeiq eval`` over GSM8K, MT-Bench and
LLMRouter's 9 models on the static + sketch features: a sharp weighting lets a large k
average over many neighbours while the nearest few dominate (docs/routing.md has the numbers).

Search runs in two passes: the keys' 32 leading principal coordinates (fitted here, saved
with the keys; 0.7 MB for LLMRouter's 5,608 keys, small enough to stay in cache) shortlist
``candidates`` keys, which are then compared in full. On GSM8K and LLMRouter the shortlist of
500 scores as the exact search to within 0.002 (routeiq eval), and a decision reads about
2 MB instead of every key (17 MB). ``dims`` optionally searches a PCA subspace instead of the
features themselves (384 halves the bundle, at about 0.005 of quality on LLMRouter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

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
        "dims": 0,  # PCA dimensions the search runs in (0: the features themselves)
        "coarse_dims": 32,  # principal axes of the shortlisting pass (0: exact search)
        "candidates": 500,  # rows the shortlist keeps for the full comparison
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
        projection: F32 | None = None,
        shortlist: F32 | None = None,
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
        # (d, dims): features → search space; None searches the raw features.
        self.projection = projection
        # (search dims, coarse_dims): the leading principal axes of the keys, for shortlisting.
        self.shortlist = shortlist
        self._prepare()

    def _prepare(self) -> None:
        """Serving copies: contiguous float32 keys, weight × quality precomputed (a decision
        then reads each key once and touches only its k neighbours' labels)."""
        self._keys = np.ascontiguousarray(self.keys, dtype=np.float32)
        self._w = np.ascontiguousarray(self.weights, dtype=np.float64)
        self._wq = self._w * np.nan_to_num(self.quality)
        # The coarse keys (derived, not stored): each key's leading principal coordinates.
        self._coarse = (
            np.ascontiguousarray(_unit(self._keys @ self.shortlist))
            if self.shortlist is not None and self._keys.shape[0]
            else None
        )

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
        x = data.embeddings.astype(np.float32)
        dims = int(router.params["dims"])
        if 0 < dims < min(x.shape):
            # Principal axes of the training vectors (centred), applied without centring so
            # a projected key stays comparable with a projected query by cosine.
            _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
            router.projection = np.ascontiguousarray(vt[:dims].T, dtype=np.float32)
            x = _unit(x @ router.projection)
        c = int(router.params["coarse_dims"])
        if 0 < c < x.shape[1] and x.shape[0] > int(router.params["candidates"]):
            _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
            router.shortlist = np.ascontiguousarray(vt[:c].T, dtype=np.float32)
        router.keys = x
        router.quality = data.quality.astype(np.float64)
        router.weights = data.sample_weights()
        router.priors = data.priors()
        router._prepare()
        ctx.info["examples"] = len(data)
        ctx.info["device"] = "cpu"
        return router

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        n = embeddings.shape[0]
        out = np.empty((n, len(self.models)), dtype=np.float64)
        if self._keys.shape[0] == 0:
            out[:] = self.priors
            return out
        k = min(int(self.params["k"]), self._keys.shape[0])
        chunk = int(self.params["chunk"])
        power = float(self.params["power"])
        for start in range(0, n, chunk):
            z = np.asarray(embeddings[start : start + chunk], dtype=np.float32)
            if self.projection is not None:
                z = z @ self.projection
            top, sims = self._neighbours(z, k)
            if self.params["weighting"] == "distance":
                nw = np.maximum(sims.astype(np.float64), 1e-6) ** power
            else:
                nw = np.ones(sims.shape)
            # Σ_neighbours weight · observation weight · quality / Σ weight · observation weight
            total = np.einsum("bk,bkm->bm", nw, self._w[top])
            mean = np.einsum("bk,bkm->bm", nw, self._wq[top]) / np.maximum(total, 1e-12)
            out[start : start + chunk] = np.where(total > 0, mean, self.priors)
        return out

    def _neighbours(self, z: F32, k: int) -> tuple[NDArray[np.int64], F32]:
        """The k most similar keys of each (projected) query and their cosine similarities.

        With enough keys, a coarse pass over the keys' first ``coarse_dims`` coordinates
        (the leading principal axes: small enough to stay in cache) shortlists
        ``candidates`` rows, and only those are compared in full: one decision then reads a
        few hundred kilobytes instead of every key (8.6 MB for LLMRouter's 5,608).
        """
        q = _unit(z)
        keys = self._keys
        pool = int(self.params["candidates"])
        if self._coarse is None or self.shortlist is None or keys.shape[0] <= pool or pool < k:
            sims = q @ keys.T
            if k < sims.shape[1]:
                top = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, -k:]
            else:
                top = np.broadcast_to(np.arange(sims.shape[1]), (sims.shape[0], k))
            return top, np.take_along_axis(sims, top, axis=1)
        coarse = _unit(q @ self.shortlist) @ self._coarse.T
        shortlist = np.argpartition(coarse, coarse.shape[1] - pool, axis=1)[:, -pool:]
        sims = np.einsum("bd,bcd->bc", q, keys[shortlist])
        local = np.argpartition(sims, pool - k, axis=1)[:, -k:]
        return np.take_along_axis(shortlist, local, axis=1), np.take_along_axis(sims, local, axis=1)

    def save(self, folder: Path) -> list[str]:
        # float32 keys: float16 would halve the bundle but can change neighbour sets, and the
        # served router must score exactly as the evaluated one.
        arrays = {
            "keys": self.keys.astype(np.float32),
            "quality": self.quality.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "priors": self.priors.astype(np.float64),
        }
        if self.projection is not None:
            arrays["projection"] = self.projection.astype(np.float32)
        if self.shortlist is not None:
            arrays["shortlist"] = self.shortlist.astype(np.float32)
        np.savez(folder / _FILE, **arrays)  # type: ignore[arg-type]
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
            projection=arrays["projection"].astype(np.float32) if "projection" in arrays else None,
            shortlist=arrays["shortlist"].astype(np.float32) if "shortlist" in arrays else None,
        )


def _unit(x: F32) -> F32:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12), dtype=np.float32)
