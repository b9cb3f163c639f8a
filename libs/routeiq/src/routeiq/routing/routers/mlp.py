"""MLP router: embedding → two hidden layers → one logit per candidate (sigmoid = quality).

Trained with torch (masked, weighted BCE over observed cells); exported as safetensors and
run in numpy at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.routers.base import F32, F64, TrainingData, sigmoid
from routeiq.routing.routers.neural import NeuralRouter


class MLPRouter(NeuralRouter):
    kind = "mlp"
    tensor_file = "mlp.safetensors"
    default_params = {
        **NeuralRouter.default_params,
        "hidden": 256,
        "dropout": 0.1,
        "epochs": 30,
        "lr": 1e-3,
    }

    def network(self, data: TrainingData) -> Any:
        import torch
        from torch import nn

        from routeiq.routing.routers.torch_train import prior_logits

        p = self.params
        d, h, m = data.embeddings.shape[1], int(p["hidden"]), len(data.models)
        # Built before the hidden layers, as it always was: the seeded initialisation of
        # every layer (and so the trained router) stays what it was.
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
            out_layer.bias.copy_(prior_logits(data))
        return net

    def export(self, net: Any) -> dict[str, NDArray[np.float32]]:
        from routeiq.routing.routers.torch_train import to_numpy

        return {
            "w1": to_numpy(net[0].weight),
            "b1": to_numpy(net[0].bias),
            "w2": to_numpy(net[3].weight),
            "b2": to_numpy(net[3].bias),
            "w3": to_numpy(net[6].weight),
            "b3": to_numpy(net[6].bias),
        }

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        t = self.tensors
        h = np.maximum(embeddings @ t["w1"].T + t["b1"], 0.0)
        h = np.maximum(h @ t["w2"].T + t["b2"], 0.0)
        return sigmoid(h @ t["w3"].T + t["b3"])
