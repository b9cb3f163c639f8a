"""``example_ridge``: one ridge regression per candidate from query features to quality.

Inference is numpy only (the gateway predicts on its hot path); the weights are saved as
safetensors, which RouteIQ's bundle hashes and signs like any built-in router's files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from routeiq.routing.routers import FitContext, Router, RouterError, TrainingData
from routeiq.routing.routers.base import F32, F64
from safetensors.numpy import load_file, save_file

FILE = "example_ridge.safetensors"


class RidgeRouter(Router):
    """Expected quality of each candidate = a linear function of the query's features,
    fitted by weighted ridge regression on the cells where that candidate was observed."""

    kind = "example_ridge"
    default_params = {"alpha": 1.0}

    def __init__(
        self,
        models: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        coef: F64 | None = None,
    ) -> None:
        super().__init__(models, params)
        if float(self.params["alpha"]) <= 0:
            raise RouterError(f"{self.kind}: alpha must be > 0")
        self.coef = coef  # (d + 1, m): features then the intercept

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        if self.coef is None:
            raise RouterError(f"{self.kind}: predict before fit or load")
        x = np.asarray(embeddings, dtype=np.float64)
        raw = x @ self.coef[:-1] + self.coef[-1]
        return np.asarray(np.clip(raw, 0.0, 1.0), dtype=np.float64)

    def save(self, folder: Path) -> list[str]:
        if self.coef is None:
            raise RouterError(f"{self.kind}: nothing to save before fit")
        save_file({"coef": self.coef}, str(folder / FILE))
        return [FILE]

    @classmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        coef = np.asarray(load_file(str(folder / FILE))["coef"], dtype=np.float64)
        if coef.ndim != 2 or coef.shape[1] != len(models):
            raise RouterError(f"{cls.kind}: weights of shape {coef.shape} for {len(models)} models")
        return cls(models, params, coef=coef)

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        router = cls(data.models, params)
        alpha = float(router.params["alpha"])
        x = np.asarray(data.embeddings, dtype=np.float64)
        design = np.hstack([x, np.ones((len(x), 1))])
        weights = data.sample_weights()  # 0 where a model was not observed
        priors = data.priors()
        ridge = alpha * np.eye(design.shape[1])
        ridge[-1, -1] = 0.0  # the intercept is not shrunk
        coef = np.zeros((design.shape[1], len(data.models)))
        for j in range(len(data.models)):
            w = weights[:, j]
            if w.sum() <= 0:  # never observed: predict the prior
                coef[-1, j] = priors[j]
                continue
            y = np.nan_to_num(data.quality[:, j])
            weighted = design * w[:, None]
            coef[:, j] = np.linalg.solve(design.T @ weighted + ridge, weighted.T @ y)
        ctx.info["alpha"] = alpha
        ctx.say(f"{cls.kind}: fitted {len(data.models)} models on {len(data)} queries")
        router.coef = coef
        return router
