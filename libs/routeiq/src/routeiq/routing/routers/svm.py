"""SVM router: per candidate, a support-vector regressor of quality on an RBF kernel map.

An exact RBF ``SVR`` scales quadratically with examples; a Nystroem approximation of the same
kernel followed by a linear SVR trains on 100k examples in seconds and predicts in
microseconds. Saved with skops, and loaded only when every type in the file is on an
allowlist of the scikit-learn classes this router writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from routeiq.routing.routers.base import F32, F64, FitContext, Router, RouterError, TrainingData

_FILE = "svm.skops"
# Exactly what fit() builds; anything else in a file is refused before loading.
_ALLOWED_TYPES = {
    "sklearn.pipeline.Pipeline",
    "sklearn.kernel_approximation.Nystroem",
    "sklearn.svm._classes.LinearSVR",
    "sklearn.svm.LinearSVR",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
}


class SVMRouter(Router):
    kind = "svm"
    default_params: ClassVar[Mapping[str, Any]] = {
        "C": 1.0,
        "epsilon": 0.05,
        "gamma": 1.0,  # RBF width on unit vectors (|a-b|^2 in [0, 4])
        "components": 1024,  # Nystroem landmarks
        "max_iter": 5000,
    }

    def __init__(
        self,
        models: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        estimators: list[Any] | None = None,
        priors: F64 | None = None,
    ) -> None:
        super().__init__(models, params)
        self.estimators = estimators or []
        self.priors = priors if priors is not None else np.full(len(self.models), 0.5)

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        from sklearn.kernel_approximation import Nystroem
        from sklearn.pipeline import Pipeline
        from sklearn.svm import LinearSVR

        router = cls(data.models, params)
        p = router.params
        weights = data.sample_weights()
        priors = data.priors()
        estimators: list[Any] = []
        for j, model in enumerate(data.models):
            rows = weights[:, j] > 0
            if rows.sum() < 2:
                ctx.say(f"svm: {model} has {int(rows.sum())} labelled examples; using its prior")
                estimators.append(None)
                continue
            x = data.embeddings[rows]
            pipe = Pipeline(
                [
                    (
                        "rbf",
                        Nystroem(
                            kernel="rbf",
                            gamma=float(p["gamma"]),
                            n_components=min(int(p["components"]), int(rows.sum())),
                            random_state=ctx.seed,
                        ),
                    ),
                    (
                        "svr",
                        LinearSVR(
                            C=float(p["C"]),
                            epsilon=float(p["epsilon"]),
                            max_iter=int(p["max_iter"]),
                            dual="auto",
                            random_state=ctx.seed,
                        ),
                    ),
                ]
            )
            pipe.fit(x, data.quality[rows, j], svr__sample_weight=weights[rows, j])
            estimators.append(pipe)
        router.estimators = estimators
        router.priors = priors
        ctx.info["device"] = "cpu"
        ctx.info["examples"] = len(data)
        return router

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        out = np.empty((embeddings.shape[0], len(self.models)), dtype=np.float64)
        for j, est in enumerate(self.estimators):
            out[:, j] = self.priors[j] if est is None else est.predict(embeddings)
        return np.clip(out, 0.0, 1.0)

    def save(self, folder: Path) -> list[str]:
        import skops.io as sio

        sio.dump({"estimators": self.estimators, "priors": self.priors}, folder / _FILE)
        return [_FILE]

    @classmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        import skops.io as sio

        path = folder / _FILE
        untrusted = set(sio.get_untrusted_types(file=path))
        refused = sorted(untrusted - _ALLOWED_TYPES)
        if refused:
            raise RouterError(f"svm: {path.name} contains types outside the allowlist: {refused}")
        state = sio.load(path, trusted=sorted(untrusted))
        # skops trusts every scikit-learn class by default; accept only what fit() builds.
        from sklearn.kernel_approximation import Nystroem
        from sklearn.pipeline import Pipeline
        from sklearn.svm import LinearSVR

        for est in state.get("estimators", []):
            if est is None:
                continue
            steps = getattr(est, "steps", None)
            if not (
                isinstance(est, Pipeline)
                and steps
                and len(steps) == 2
                and isinstance(steps[0][1], Nystroem)
                and isinstance(steps[1][1], LinearSVR)
            ):
                raise RouterError(
                    f"svm: {path.name} holds {type(est).__name__}, outside the "
                    "allowlist (Pipeline of Nystroem and LinearSVR)"
                )
        return cls(
            models,
            params,
            estimators=list(state["estimators"]),
            priors=np.asarray(state["priors"], dtype=np.float64),
        )
