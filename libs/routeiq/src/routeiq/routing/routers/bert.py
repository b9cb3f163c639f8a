"""MiniLM encoder classifier, after RouteLLM's BERT router: all-MiniLM-L6-v2 fine-tuned end to
end with a linear head giving one quality logit per candidate.

It reads the query text, so it trains from dataset files only (shards never carry text).
The fine-tuned encoder is exported as safetensors (float16) and runs at inference through the
same numpy MiniLM as the gateway's embeddings, so serving needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.embedding import MiniLMEncoder, packaged_model_dir
from routeiq.routing.routers.base import (
    F32,
    F64,
    FitContext,
    Router,
    RouterError,
    TrainingData,
    sigmoid,
)

_ENCODER = "encoder.safetensors"
_HEAD = "head.safetensors"


class BertRouter(Router):
    kind = "bert"
    needs_text = True
    default_params: ClassVar[Mapping[str, Any]] = {
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-5,
        "head_lr": 1e-3,
        "weight_decay": 0.01,
        "max_length": 128,
    }

    def __init__(
        self,
        models: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        encoder: MiniLMEncoder | None = None,
        head: Mapping[str, NDArray[np.float32]] | None = None,
        encoder_tensors: Mapping[str, NDArray[Any]] | None = None,
    ) -> None:
        super().__init__(models, params)
        self.encoder = encoder
        self.head = dict(head or {})
        self._encoder_tensors = dict(encoder_tensors or {})

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        if data.texts is None:
            raise RouterError(
                "bert: fine-tuning needs the query text, which training shards never carry; "
                "train it from a dataset file (routeiq eval --train FILE --router bert)"
            )
        import torch
        from transformers import AutoTokenizer, BertModel

        from routeiq.routing.routers.torch_train import prior_logits, train_loop

        router = cls(data.models, params)
        p = router.params
        torch.manual_seed(ctx.seed)
        model_dir = packaged_model_dir()
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        encoder: Any = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False)
        head = torch.nn.Linear(encoder.config.hidden_size, len(data.models))
        with torch.no_grad():
            head.bias.copy_(prior_logits(data))
            head.weight.zero_()
        texts, max_length = data.texts, int(p["max_length"])

        def forward(net: Any, rows: Any, device: str) -> Any:
            enc = tokenizer(
                [texts[i] for i in rows.tolist()],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            states = net["bert"](**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            return net["head"](torch.nn.functional.normalize(pooled.float(), dim=-1))

        net = train_loop(
            torch.nn.ModuleDict({"bert": encoder, "head": head}),
            data,
            ctx=ctx,
            params=p,
            forward=forward,
            # The pretrained encoder is fine-tuned gently; the fresh head learns faster.
            param_groups=lambda m: [
                {"params": m["bert"].parameters(), "lr": float(p["lr"])},
                {"params": m["head"].parameters(), "lr": float(p["head_lr"])},
            ],
            label="bert ",
        )
        bert, head = net["bert"], net["head"]
        tensors = {k: v.detach().float().numpy() for k, v in bert.state_dict().items()}
        router._encoder_tensors = tensors
        router.encoder = MiniLMEncoder(weights=tensors, max_seq_length=int(p["max_length"]))
        router.head = {
            "w": head.weight.detach().cpu().float().numpy(),
            "b": head.bias.detach().cpu().float().numpy(),
        }
        return router

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        if texts is None or self.encoder is None:
            raise RouterError("bert: prediction needs the query texts")
        pooled = self.encoder.encode(list(texts))
        return sigmoid(pooled @ self.head["w"].T + self.head["b"])

    def save(self, folder: Path) -> list[str]:
        from safetensors.numpy import save_file

        tensors = self._encoder_tensors
        if not tensors:
            raise RouterError("bert: nothing to save (not trained)")
        # float16 halves the bundle (45 MB); the numpy encoder computes in float32.
        save_file(
            {
                k: np.ascontiguousarray(v.astype(np.float16))
                for k, v in tensors.items()
                if k != "embeddings.position_ids"
            },
            str(folder / _ENCODER),
        )
        save_file(
            {k: np.ascontiguousarray(v, np.float32) for k, v in self.head.items()},
            str(folder / _HEAD),
        )
        return [_ENCODER, _HEAD]

    @classmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        from safetensors.numpy import load_file

        merged = {**cls.default_params, **params}
        tensors = load_file(str(folder / _ENCODER))
        encoder = MiniLMEncoder(weights=tensors, max_seq_length=int(merged["max_length"]))
        return cls(
            models,
            params,
            encoder=encoder,
            head=load_file(str(folder / _HEAD)),
            encoder_tensors=tensors,
        )
