"""The active learned router (``BundleHolder``) and what a strategy reads from it."""

from __future__ import annotations

import threading

from routeiq.routing.bundle import LoadedBundle
from routeiq.routing.strategies.base import RouteInput

__all__ = ["BundleHolder", "predict_quality"]


class BundleHolder:
    """The active learned router, swapped atomically by model sync; readers take a snapshot."""

    def __init__(self) -> None:
        self._bundle: LoadedBundle | None = None
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedBundle | None:
        return self._bundle  # a single reference read is atomic: no lock on the hot path

    @property
    def loaded_at(self) -> float | None:
        return self._loaded_at

    def swap(self, bundle: LoadedBundle | None, *, at: float) -> LoadedBundle | None:
        with self._lock:
            old, self._bundle, self._loaded_at = self._bundle, bundle, at
        return old


def predict_quality(bundle: LoadedBundle, request: RouteInput) -> dict[str, float]:
    """The active router's expected quality per model for ``request`` (its own features)."""
    emb = request.embedding(bundle.featurizer)[None, :]
    pred = bundle.router.predict(emb, [request.text])[0]
    return {m: float(v) for m, v in zip(bundle.manifest.models, pred, strict=True)}
