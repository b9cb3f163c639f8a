"""What every learned router is: predict each candidate's expected quality from query features.

Inference (``predict``, ``load``) is numpy only, because the gateway runs it on its hot path;
training (``fit``) may import torch or scikit-learn lazily. Every router saves itself in safe
formats (npz without pickles, safetensors, skops with an allowlist), never pickle.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import RouteIQError

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


class RouterError(RouteIQError):
    """A router cannot be trained, saved, loaded or run."""


class RouterUnavailable(RouterError):
    """The router cannot answer this request now (its worker is starting, broken, busy or over
    its latency budget): whoever routes falls back to its configured strategy."""


@dataclass
class TrainingData:
    """Labelled examples for routers.

    ``quality[i, j]`` is candidate j's observed quality on query i in [0, 1], NaN where not
    observed (bandit feedback sees only the served model, plus any shadow outcomes).
    ``weights[i, j]`` weighs that observation: 1 for full-information labels, 1/propensity
    under inverse-propensity weighting for logged bandit outcomes.
    """

    embeddings: F32  # (n, d), L2-normalised
    quality: F64  # (n, m)
    models: tuple[str, ...]
    weights: F64 | None = None  # (n, m); None means all ones
    texts: list[str] | None = None  # only from dataset files: shards never carry text
    event_times: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        n, m = self.quality.shape
        if self.embeddings.shape[0] != n or m != len(self.models):
            raise RouterError(
                f"{self.embeddings.shape[0]} embeddings, quality {self.quality.shape}, "
                f"{len(self.models)} models: shapes disagree"
            )
        if self.weights is None:
            self.weights = np.ones_like(self.quality)
        if self.texts is not None and len(self.texts) != n:
            raise RouterError(f"{len(self.texts)} texts for {n} examples")

    def __len__(self) -> int:
        return int(self.quality.shape[0])

    @property
    def observed(self) -> NDArray[np.bool_]:
        return np.isfinite(self.quality)

    def sample_weights(self) -> F64:
        assert self.weights is not None
        return np.where(self.observed, self.weights, 0.0)

    def priors(self) -> F64:
        """Each model's weighted mean observed quality (0.5 when never observed)."""
        w = self.sample_weights()
        q = np.nan_to_num(self.quality)
        totals = w.sum(0)
        return np.where(totals > 0, (w * q).sum(0) / np.maximum(totals, 1e-12), 0.5)

    def subset(self, index: NDArray[np.int64] | Sequence[int]) -> TrainingData:
        idx = np.asarray(index, dtype=np.int64)
        assert self.weights is not None
        return TrainingData(
            embeddings=self.embeddings[idx],
            quality=self.quality[idx],
            models=self.models,
            weights=self.weights[idx],
            texts=[self.texts[i] for i in idx] if self.texts is not None else None,
            event_times=self.event_times[idx] if self.event_times is not None else None,
        )


@dataclass(frozen=True)
class FitContext:
    """How to train: seed, device ("cuda", "cpu" or None for auto) and where to report."""

    seed: int = 0
    device: str | None = None
    log: Any = None  # callable(str) or None
    info: dict[str, Any] = field(default_factory=dict)  # filled by fit: device used, epochs...

    def say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


@dataclass(frozen=True)
class HeldOutReport:
    """A router type's own evaluation on held-out rows, beyond the metrics every type gets:
    a plain-text table (logged with the run, and in the trainer's log) and its numbers."""

    table: str
    metrics: dict[str, float]


class Router(abc.ABC):
    """A learned router over a fixed, ordered tuple of candidate models."""

    kind: ClassVar[str]
    needs_text: ClassVar[bool] = False
    default_params: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, models: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        self.models = tuple(models)
        unknown = set(params or {}) - set(self.default_params)
        if unknown:
            raise RouterError(
                f"{self.kind}: unknown parameter(s) {sorted(unknown)}; "
                f"known: {sorted(self.default_params)}"
            )
        self.params: dict[str, Any] = {**self.default_params, **(params or {})}

    @abc.abstractmethod
    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        """Expected quality of every candidate for each query: (n, len(models))."""

    @abc.abstractmethod
    def save(self, folder: Path) -> list[str]:
        """Write the router's files into ``folder``; return their names."""

    @property
    def out_of_process(self) -> bool:
        """Whether scoring waits on another process (a caller on an event loop should then
        route in a thread). In-process numpy routers: no."""
        return False

    def held_out_report(
        self, held_out: TrainingData, *, costs: Mapping[str, float]
    ) -> HeldOutReport | None:
        """This type's own evaluation of a router fresh from ``fit`` on held-out rows
        (``costs``: each candidate's mean cost per query, USD); None: nothing beyond the
        metrics every router type gets."""
        return None

    def close(self) -> None:
        """Release what the router holds beyond memory (a worker process); called when model
        sync swaps it out. Nothing, for in-process routers."""
        return None

    @classmethod
    @abc.abstractmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        """Read a router written by ``save`` (files already verified by the bundle loader)."""

    @classmethod
    @abc.abstractmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        """Train on ``data``."""


def load_npz(path: Path) -> dict[str, NDArray[Any]]:
    """Arrays of an npz file, refusing pickled objects."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def torch_device(requested: str | None) -> str:
    """ "cuda" when available (or requested), else "cpu"."""
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise RouterError("device cuda requested but CUDA is not available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def masked_bce(logits: Any, target: Any, weight: Any) -> Any:
    """Weighted binary cross-entropy over observed cells (weight 0 where unobserved)."""
    import torch

    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (loss * weight).sum() / weight.sum().clamp_min(1e-12)


def sigmoid(x: F64 | F32) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64))), dtype=np.float64)
