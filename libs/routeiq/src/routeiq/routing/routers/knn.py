"""kNN router: a query's expected quality per model is the similarity-weighted mean quality
of its k most similar training queries, by cosine similarity of their feature vectors.

Defaults (k = 200, weights ``exp(10 · (similarity − the nearest one's))``) come from
``routeiq eval`` over GSM8K, MT-Bench and LLMRouter's 9 models on the static + sketch
features: weights fall off with the distance from the query's own nearest neighbour, so the
nearest few dominate (a query asked before counts its own outcome several times more than
under similarity⁴ weights), while a query in a sparse region still averages over many
neighbours instead of all weights vanishing (docs/routing.md has the numbers; similarity⁴
weights with k = 100, the previous default, scored 0.01 to 0.02 lower on GSM8K and LLMRouter).

Search runs in the keys' 128 leading principal axes (``dims``; fitted here, applied without
centring so cosine similarity keeps its meaning): LLMRouter's 5,608 keys are then 2.9 MB
instead of 17 MB, small enough to stay in a gateway's cache while it serves, and the exact
search over them takes about a tenth of a millisecond. On LLMRouter the subspace routes as
well as the full features (0.603 against 0.598 at half the best single model's cost), on
GSM8K 0.01 lower in APGR (still above the baseline kNN); docs/routing.md has the numbers.

Beyond ``exact_up_to`` keys (bundles may hold up to ``max_examples``) a second pass keeps a
decision's cost bounded: the keys' 32 leading principal coordinates shortlist ``candidates``
keys, which are then compared in full (on GSM8K and LLMRouter the shortlist of 500 scores as
the exact search to within 0.003).
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
WEIGHTINGS = ("softmax", "distance", "uniform")


class KNNRouter(Router):
    kind = "knn"
    default_params: ClassVar[Mapping[str, Any]] = {
        "k": 200,
        # "softmax": exp(sharpness · (similarity − the nearest neighbour's similarity));
        # "distance": similarity ** power; "uniform": one vote each.
        "weighting": "softmax",
        "sharpness": 10.0,
        "power": 4.0,
        "max_examples": 100_000,  # newest examples kept (bounds bundle size and latency)
        "dims": 128,  # PCA dimensions the search runs in (0: the features themselves)
        "exact_up_to": 20_000,  # keys searched exhaustively; beyond, shortlist first
        "coarse_dims": 32,  # principal axes of the shortlisting pass (0: always exact)
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
        if self.params["weighting"] not in WEIGHTINGS:
            raise RouterError(
                f"knn: weighting must be one of {', '.join(WEIGHTINGS)}, "
                f"got {self.params['weighting']!r}"
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
        w = np.asarray(self.weights, dtype=np.float64)
        # (n, 2m): each key's observation weights, then weight × quality, side by side.
        self._w_wq = np.ascontiguousarray(np.hstack([w, w * np.nan_to_num(self.quality)]))
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
        pool = max(int(router.params["candidates"]), int(router.params["exact_up_to"]))
        if 0 < c < x.shape[1] and x.shape[0] > pool:
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
        for start in range(0, n, chunk):
            z = np.asarray(embeddings[start : start + chunk], dtype=np.float32)
            if self.projection is not None:
                z = z @ self.projection
            top, sims = self._neighbours(z, k)
            nw = self._weights(sims.astype(np.float64))
            # Σ_neighbours weight · observation weight · quality / Σ weight · observation
            # weight: both sums in one gather and one batched product.
            sums = np.matmul(nw[:, None, :], self._w_wq[top])[:, 0, :]
            m = len(self.models)
            total, weighted = sums[:, :m], sums[:, m:]
            mean = weighted / np.maximum(total, 1e-12)
            out[start : start + chunk] = np.where(total > 0, mean, self.priors)
        return out

    def _weights(self, sims: F64) -> F64:
        """Each neighbour's vote, from its similarity to the query (rows: queries)."""
        weighting = self.params["weighting"]
        if weighting == "softmax":
            nearest = sims.max(axis=1, keepdims=True)
            return np.asarray(np.exp(float(self.params["sharpness"]) * (sims - nearest)))
        if weighting == "distance":
            return np.asarray(np.maximum(sims, 1e-6) ** float(self.params["power"]))
        return np.ones(sims.shape)

    def _neighbours(self, z: F32, k: int) -> tuple[NDArray[np.int64], F32]:
        """The k most similar keys of each (projected) query and their cosine similarities.

        Beyond ``exact_up_to`` keys, a coarse pass over the keys' first ``coarse_dims``
        coordinates (the leading principal axes: small enough to stay in cache) shortlists
        ``candidates`` rows, and only those are compared in full.
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
