"""Matrix-factorisation router, after RouteLLM's: a learned embedding per model, the query
embedding projected into the same space, their element-wise product scored by a linear head.

    logit(m, x) = w · (P[m] ⊙ (W x)) + b[m]

RouteLLM trains it on pairwise wins between two models; here the same factorisation predicts
every candidate's quality (masked BCE over observed cells), which also covers n > 2 models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.routers.base import F32, F64, TrainingData, sigmoid
from routeiq.routing.routers.neural import NeuralRouter


class MFRouter(NeuralRouter):
    kind = "mf"
    tensor_file = "mf.safetensors"
    default_params = {**NeuralRouter.default_params, "dim": 128, "epochs": 40, "lr": 3e-3}

    def network(self, data: TrainingData) -> Any:
        import torch
        from torch import nn

        from routeiq.routing.routers.torch_train import prior_logits

        d, k, m = data.embeddings.shape[1], int(self.params["dim"]), len(data.models)

        class Factorisation(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.P = nn.Parameter(torch.randn(m, k) * 0.1)
                self.proj = nn.Linear(d, k, bias=False)
                self.head = nn.Linear(k, 1, bias=False)
                self.bias = nn.Parameter(prior_logits(data))

            def forward(self, x: Any) -> Any:
                z = self.proj(x)  # (b, k)
                inter = z[:, None, :] * self.P[None, :, :]  # (b, m, k)
                return self.head(inter).squeeze(-1) + self.bias

        return Factorisation()

    def export(self, net: Any) -> dict[str, NDArray[np.float32]]:
        from routeiq.routing.routers.torch_train import to_numpy

        return {
            "P": to_numpy(net.P),
            "W": to_numpy(net.proj.weight),
            "w": to_numpy(net.head.weight)[0],
            "b": to_numpy(net.bias),
        }

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        t = self.tensors
        z = embeddings @ t["W"].T  # (n, k)
        # w · (P[m] ⊙ z) = z · (P[m] ⊙ w): one matmul against the weighted model embeddings.
        return sigmoid(z @ (t["P"] * t["w"]).T + t["b"])
