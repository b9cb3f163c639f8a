"""Builders shared by the routing library's unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routeiq.routing.bundle import Candidate, Signer, write_bundle
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.routing.routers import FitContext, TrainingData, router_class


def write_knn_bundle(folder: Path, data: TrainingData, signer: Signer, **options: Any) -> Path:
    """A kNN router fitted on ``data``, written to ``folder`` as bundle ``r``/``1`` with one
    unpriced candidate per model and MiniLM features; ``options`` (version, featurizer,
    metrics, calibration) replace or add to those ``write_bundle`` arguments."""
    router = router_class("knn").fit(data, ctx=FitContext())
    candidates = [Candidate(m) for m in data.models]
    settings: dict[str, Any] = {"name": "r", "version": "1", "candidates": candidates}
    if "featurizer" not in options:
        settings["featurizer"] = minilm_pipeline()
    write_bundle(router, folder, signer=signer, **{**settings, **options})
    return folder
