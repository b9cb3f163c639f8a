"""Matrix-factorisation router, after RouteLLM's: a learned embedding per model, the query
embedding projected into the same space, their element-wise product scored by a linear head.

    logit(m, x) = w · (P[m] ⊙ (W x)) + b[m]

RouteLLM trains it on pairwise wins between two models; here the same factorisation predicts
every candidate's quality (masked BCE over observed cells), which also covers n > 2 models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.routers.base import F32, F64, FitContext, Router, TrainingData, sigmoid

_FILE = "mf.safetensors"


class MFRouter(Router):
    kind = "mf"
    default_params: ClassVar[Mapping[str, Any]] = {
        "dim": 128,
        "epochs": 40,
        "batch_size": 128,
        "lr": 3e-3,
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
        d, k, m = data.embeddings.shape[1], int(p["dim"]), len(data.models)

        class Factorisation(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.P = nn.Parameter(torch.randn(m, k) * 0.1)
                self.proj = nn.Linear(d, k, bias=False)
                self.head = nn.Linear(k, 1, bias=False)
                prior = torch.as_tensor(data.priors(), dtype=torch.float32).clamp(1e-3, 1 - 1e-3)
                self.bias = nn.Parameter(torch.log(prior / (1 - prior)))

            def forward(self, x: Any) -> Any:
                z = self.proj(x)  # (b, k)
                inter = z[:, None, :] * self.P[None, :, :]  # (b, m, k)
                return self.head(inter).squeeze(-1) + self.bias

        net = train_loop(
            Factorisation(),
            data,
            ctx=ctx,
            epochs=int(p["epochs"]),
            batch_size=int(p["batch_size"]),
            lr=float(p["lr"]),
            weight_decay=float(p["weight_decay"]),
        )
        router.tensors = {
            "P": to_numpy(net.P),
            "W": to_numpy(net.proj.weight),
            "w": to_numpy(net.head.weight)[0],
            "b": to_numpy(net.bias),
        }
        return router

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        t = self.tensors
        z = embeddings @ t["W"].T  # (n, k)
        # w · (P[m] ⊙ z) = z · (P[m] ⊙ w): one matmul against the weighted model embeddings.
        return sigmoid(z @ (t["P"] * t["w"]).T + t["b"])

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
