"""The one torch training loop for the neural routers (MLP, matrix factorisation, MiniLM).

torch is imported here only, and this module only by ``fit``: inference never needs it.
CUDA is used when present, with bf16 autocast there (mixed precision); CPU otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from routeiq.routing.routers.base import FitContext, TrainingData, masked_bce, torch_device


def train_loop(
    module: Any,
    data: TrainingData,
    *,
    ctx: FitContext,
    params: Mapping[str, Any],
    forward: Callable[[Any, Any, str], Any] | None = None,
    param_groups: Callable[[Any], list[dict[str, Any]]] | None = None,
    label: str = "",
) -> Any:
    """Train ``module`` to map queries to per-model logits under masked, weighted BCE.

    ``params`` gives ``epochs``, ``batch_size``, ``lr`` and ``weight_decay``.
    ``forward(module, rows, device)`` returns the logits of a batch of row indices (default:
    ``module`` applied to those rows' embeddings); ``param_groups(module)`` the optimiser's
    groups when parts learn at other rates (default: every parameter at ``lr``). Returns the
    module on the CPU, in eval mode.
    """
    import torch

    torch.manual_seed(ctx.seed)
    device = torch_device(ctx.device)
    use_amp = device.startswith("cuda")
    epochs, batch_size = int(params["epochs"]), int(params["batch_size"])
    module = module.to(device)
    run = forward
    if run is None:
        x_all = torch.as_tensor(data.embeddings, device=device)

        def run(m: Any, rows: Any, _device: str) -> Any:
            return m(x_all[rows])

    target = torch.as_tensor(
        np.nan_to_num(data.quality).clip(0.0, 1.0), dtype=torch.float32, device=device
    )
    weight = torch.as_tensor(data.sample_weights(), dtype=torch.float32, device=device)
    groups = module.parameters() if param_groups is None else param_groups(module)
    optimiser = torch.optim.AdamW(
        groups, lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
    )
    n = len(data)
    generator = torch.Generator(device="cpu").manual_seed(ctx.seed)
    start = time.perf_counter()
    losses: list[float] = []
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(n, generator=generator).to(device)
        total, batches = 0.0, 0
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                logits = run(module, idx, device)
            loss = masked_bce(logits.float(), target[idx], weight[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            batches += 1
        losses.append(total / max(batches, 1))
        ctx.say(f"{label}epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}")
    if use_amp:
        torch.cuda.synchronize()
    ctx.info.update(
        device=device,
        mixed_precision="bf16" if use_amp else "off",
        epochs=epochs,
        final_loss=losses[-1] if losses else float("nan"),
        train_seconds=time.perf_counter() - start,
        examples=n,
    )
    return module.to("cpu").eval()


def prior_logits(data: TrainingData) -> Any:
    """Each model's prior quality as a logit: an output layer's starting bias, so early epochs
    do not fight the base rate."""
    import torch

    prior = torch.as_tensor(data.priors(), dtype=torch.float32).clamp(1e-3, 1 - 1e-3)
    return torch.log(prior / (1 - prior))


def to_numpy(tensor: Any) -> Any:
    return tensor.detach().to("cpu").float().numpy()
