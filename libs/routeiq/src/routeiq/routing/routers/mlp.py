"""MLP router: embedding → two hidden layers → one logit per candidate (sigmoid = quality).

Trained with torch (masked, weighted BCE over observed cells); exported as safetensors and
run in numpy at inference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.routers.base import F32, F64, FitContext, Router, TrainingData, sigmoid

_FILE = "mlp.safetensors"


class MLPRouter(Router):
    kind = "mlp"
    default_params: ClassVar[Mapping[str, Any]] = {
        "hidden": 256,
        "dropout": 0.1,
        "epochs": 30,
        "batch_size": 128,
        "lr": 1e-3,
        "weight_decay": 1e-4,
    }

    def __init__(
        self,
        models: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        tensors: Mapping[str, NDArray[np.float32]] | None = None,
    ) -> None:
        super().__init__(models, params)
        self.tensors = dict(tensors or {})

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        import torch
        from torch import nn

        from routeiq.routing.routers.torch_train import to_numpy, train_loop

        router = cls(data.models, params)
        p = router.params
        torch.manual_seed(ctx.seed)
        d, h, m = data.embeddings.shape[1], int(p["hidden"]), len(data.models)
        out_layer = nn.Linear(h, m)
        net = nn.Sequential(
            nn.Linear(d, h),
            nn.ReLU(),
            nn.Dropout(float(p["dropout"])),
            nn.Linear(h, h),
            nn.ReLU(),
            nn.Dropout(float(p["dropout"])),
            out_layer,
        )
        # Start each output at its model's prior so early epochs do not fight the base rate.
        with torch.no_grad():
            prior = torch.as_tensor(data.priors(), dtype=torch.float32).clamp(1e-3, 1 - 1e-3)
            out_layer.bias.copy_(torch.log(prior / (1 - prior)))
        net = train_loop(
            net,
            data,
            ctx=ctx,
            epochs=int(p["epochs"]),
            batch_size=int(p["batch_size"]),
            lr=float(p["lr"]),
            weight_decay=float(p["weight_decay"]),
        )
        router.tensors = {
            "w1": to_numpy(net[0].weight),
            "b1": to_numpy(net[0].bias),
            "w2": to_numpy(net[3].weight),
            "b2": to_numpy(net[3].bias),
            "w3": to_numpy(net[6].weight),
            "b3": to_numpy(net[6].bias),
        }
        return router

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        t = self.tensors
        h = np.maximum(embeddings @ t["w1"].T + t["b1"], 0.0)
        h = np.maximum(h @ t["w2"].T + t["b2"], 0.0)
        return sigmoid(h @ t["w3"].T + t["b3"])

    def save(self, folder: Path) -> list[str]:
        from safetensors.numpy import save_file

        save_file(
            {k: np.ascontiguousarray(v, np.float32) for k, v in self.tensors.items()},
            str(folder / _FILE),
        )
        return [_FILE]

    @classmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        from safetensors.numpy import load_file

        return cls(models, params, tensors=load_file(str(folder / _FILE)))
