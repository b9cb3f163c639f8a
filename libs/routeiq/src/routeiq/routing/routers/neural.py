"""Routers trained with torch and run in numpy from a few named float32 tensors (MLP, matrix
factorisation): the shared fit, save and load, so each keeps only its network and its
numpy forward pass."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.routers.base import FitContext, Router, TrainingData


class NeuralRouter(Router):
    """A router whose whole state is ``tensors``, saved as one safetensors file."""

    tensor_file: ClassVar[str]
    # What every network trains with unless its class says otherwise (``train_loop`` reads
    # these with ``epochs`` and ``lr``, which each network sets).
    default_params: ClassVar[Mapping[str, Any]] = {"batch_size": 128, "weight_decay": 1e-4}

    def __init__(
        self,
        models: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        tensors: Mapping[str, NDArray[np.float32]] | None = None,
    ) -> None:
        super().__init__(models, params)
        self.tensors = dict(tensors or {})

    @abc.abstractmethod
    def network(self, data: TrainingData) -> Any:
        """The torch module to train (called with torch seeded, so its initialisation is
        reproducible)."""

    @abc.abstractmethod
    def export(self, net: Any) -> dict[str, NDArray[np.float32]]:
        """The trained module's weights as the numpy tensors ``predict`` reads."""

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        import torch

        from routeiq.routing.routers.torch_train import train_loop

        router = cls(data.models, params)
        torch.manual_seed(ctx.seed)
        net = train_loop(router.network(data), data, ctx=ctx, params=router.params)
        router.tensors = router.export(net)
        return router

    def save(self, folder: Path) -> list[str]:
        from safetensors.numpy import save_file

        save_file(
            {k: np.ascontiguousarray(v, np.float32) for k, v in self.tensors.items()},
            str(folder / self.tensor_file),
        )
        return [self.tensor_file]

    @classmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        from safetensors.numpy import load_file

        return cls(models, params, tensors=load_file(str(folder / cls.tensor_file)))
