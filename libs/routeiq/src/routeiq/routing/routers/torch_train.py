"""The shared torch training loop for the neural routers (MLP, matrix factorisation, MiniLM).

torch is imported here only, and this module only by ``fit``: inference never needs it.
CUDA is used when present, with bf16 autocast there (mixed precision); CPU otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from routeiq.routing.routers.base import FitContext, TrainingData, masked_bce, torch_device


def train_loop(
    module: Any,
    data: TrainingData,
    *,
    ctx: FitContext,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    forward: Callable[[Any, Any], Any] | None = None,
    inputs: Any = None,
) -> Any:
    """Train ``module`` to map inputs to per-model logits under masked, weighted BCE.

    ``inputs`` defaults to the embeddings; ``forward(module, batch_inputs)`` defaults to
    ``module(batch_inputs)``. Returns the module on the CPU, in eval mode.
    """
    import torch

    torch.manual_seed(ctx.seed)
    device = torch_device(ctx.device)
    use_amp = device.startswith("cuda")
    module = module.to(device)
    x_all = torch.as_tensor(data.embeddings if inputs is None else inputs, device=device)
    target = torch.as_tensor(
        np.nan_to_num(data.quality).clip(0.0, 1.0), dtype=torch.float32, device=device
    )
    weight = torch.as_tensor(data.sample_weights(), dtype=torch.float32, device=device)
    optimiser = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(data)
    generator = torch.Generator(device="cpu").manual_seed(ctx.seed)
    call = forward or (lambda m, x: m(x))
    start = time.perf_counter()
    losses: list[float] = []
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(n, generator=generator).to(device)
        total, batches = 0.0, 0
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                logits = call(module, x_all[idx])
            loss = masked_bce(logits.float(), target[idx], weight[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            batches += 1
        losses.append(total / max(batches, 1))
        ctx.say(f"epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}")
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


def to_numpy(tensor: Any) -> Any:
    return tensor.detach().to("cpu").float().numpy()
