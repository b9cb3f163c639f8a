"""The causal-LM router's torch side: LoRA fine-tuning with trl (SFT, then DPO) and scoring.

Imported only by ``CausalLMRouter.fit`` and by whatever scores (the trainer in process, the
gateway's inference worker in its own process): importing ``routeiq.routing.routers`` never
pulls torch in. The base model is read from local files only (``local_files_only``, safetensors
weights): nothing is ever downloaded.

A query becomes the prompt ``PROMPT`` and each policy label a completion (`` Standard_Query``
...). SFT teaches the label (loss on the completion only); DPO then prefers, for the same
prompt, the oracle's label over the labels that would have routed to a worse model. With a
PEFT model trl copies the SFT adapter as the reference ("ref"), so DPO regularises towards
the SFT policy, not the bare base. Scoring sums each label's completion log-probabilities and
normalises over the labels: P(label | query).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from routeiq.routing.oracle import POLICIES
from routeiq.routing.routers.base import F64, FitContext, RouterError, torch_device

PROMPT = "Query: {query}\nPolicy:"
# Adapter-config keys that are not LoraConfig arguments, or that name the training machine's
# base path (the bundle's causallm.json records the base, and ``load`` checks its hash).
_NOT_LORA_ARGS = frozenset({"peft_type", "base_model_name_or_path", "revision"})

Tensors = dict[str, np.ndarray[Any, Any]]


def prompt_for(text: str, max_chars: int) -> str:
    """The prompt of one query, cut to ``max_chars`` characters (the same cut in training and
    serving, so a long query never loses its label to truncation)."""
    return PROMPT.format(query=text[:max_chars])


def completion_for(policy: str) -> str:
    return f" {policy}"


@dataclass(frozen=True)
class Stages:
    """What fine-tuning produced: the LoRA config and the adapter after each stage."""

    adapter_config: dict[str, Any]
    sft: Tensors
    dpo: Tensors | None  # None when there were no preference pairs


def load_base(base_dir: Path, device: str, *, dtype: str = "float32") -> tuple[Any, Any]:
    """(model, tokenizer) of the base model in ``base_dir``: local files, safetensors only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
        auto: Any = AutoModelForCausalLM
        model = auto.from_pretrained(
            str(base_dir),
            local_files_only=True,
            use_safetensors=True,
            dtype=getattr(torch, dtype),
        )
    except (OSError, ValueError) as exc:
        raise RouterError(f"causallm: cannot load the base model in {base_dir}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer


def _adapter_tensors(model: Any) -> Tensors:
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name="default")
    return {k: v.detach().to("cpu").float().numpy().copy() for k, v in state.items()}


def _train_args(config_cls: Any, out: Path, device: str, p: Mapping[str, Any], **extra: Any) -> Any:
    cuda = device.startswith("cuda")
    return config_cls(
        output_dir=str(out),
        per_device_train_batch_size=int(p["batch_size"]),
        max_length=int(p["max_length"]),
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        disable_tqdm=True,
        # bf16 mixed precision on CUDA; plain float32 on CPU (CPU autocast is slower there).
        bf16=cuda,
        use_cpu=not cuda,
        # Small adapters on small models: recomputing activations would only cost time.
        gradient_checkpointing=False,
        dataloader_pin_memory=cuda,
        **extra,
    )


def _quiet(trainer: Any) -> None:
    """No per-step prints on stdout: losses stay in the trainer's history for ``ctx.info``."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _losses(trainer: Any) -> list[float]:
    return [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]


def train_stages(
    base_dir: Path,
    prompts: Sequence[str],
    labels: Sequence[str],
    pairs: Sequence[tuple[int, str, str]],
    params: Mapping[str, Any],
    ctx: FitContext,
) -> Stages:
    """SFT on (prompt → label), then DPO on ``pairs`` (prompt index, chosen, rejected)."""
    import torch
    import transformers
    from datasets import Dataset
    from peft import LoraConfig
    from trl import (  # type: ignore[attr-defined]  # trl's public names, not re-exported for mypy
        DPOConfig,
        DPOTrainer,
        SFTConfig,
        SFTTrainer,
    )

    p = params
    device = torch_device(ctx.device)
    torch.manual_seed(ctx.seed)
    transformers.set_seed(ctx.seed)
    # trl and datasets report progress through logging; the trainer's log is ctx.say.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("datasets").setLevel(logging.ERROR)
    model, tokenizer = load_base(base_dir, device)
    lora: Any = LoraConfig(
        r=int(p["lora_r"]),
        lora_alpha=int(p["lora_alpha"]),
        lora_dropout=float(p["lora_dropout"]),
        target_modules=p["lora_target_modules"],
        task_type="CAUSAL_LM",
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="routeiq-causallm-") as tmp:

        def stage(
            trainer_cls: Any, config_cls: Any, model: Any, data: dict[str, list[str]], **extra: Any
        ) -> Any:
            """Run one trl stage in ``tmp`` (nothing is saved there: the adapter is read
            from the model) and return its trainer."""
            trainer = trainer_cls(
                model=model,
                args=_train_args(
                    config_cls, Path(tmp) / config_cls.__name__, device, p, seed=ctx.seed, **extra
                ),
                train_dataset=Dataset.from_dict(data),
                processing_class=tokenizer,
            )
            _quiet(trainer)
            trainer.train()
            return trainer

        sft = stage(
            partial(SFTTrainer, peft_config=lora),
            SFTConfig,
            model,
            {"prompt": list(prompts), "completion": [completion_for(x) for x in labels]},
            num_train_epochs=float(p["sft_epochs"]),
            learning_rate=float(p["sft_lr"]),
            completion_only_loss=True,
        )
        sft_tensors, sft_losses = _adapter_tensors(sft.model), _losses(sft)
        # The config as peft resolved it on this base ("all-linear" → the module names).
        config = sft.model.peft_config["default"].to_dict()
        ctx.say(f"causallm: SFT on {len(prompts)} labels, final loss {sft_losses[-1]:.4f}")
        dpo_tensors, dpo_losses = None, []
        if pairs:
            dpo = stage(
                DPOTrainer,
                DPOConfig,
                sft.model,
                {
                    "prompt": [prompts[i] for i, _, _ in pairs],
                    "chosen": [completion_for(c) for _, c, _ in pairs],
                    "rejected": [completion_for(r) for _, _, r in pairs],
                },
                num_train_epochs=float(p["dpo_epochs"]),
                learning_rate=float(p["dpo_lr"]),
                beta=float(p["dpo_beta"]),
            )
            dpo_tensors, dpo_losses = _adapter_tensors(dpo.model), _losses(dpo)
            ctx.say(f"causallm: DPO on {len(pairs)} pairs, final loss {dpo_losses[-1]:.4f}")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    # JSON-safe: peft keeps target modules as a set and the task type as an enum.
    config["target_modules"] = (
        sorted(config["target_modules"])
        if isinstance(config["target_modules"], set | list | tuple)
        else config["target_modules"]
    )
    config = {k: (v.value if hasattr(v, "value") else v) for k, v in config.items()}
    ctx.info.update(
        device=device,
        mixed_precision="bf16" if device.startswith("cuda") else "off",
        train_seconds=time.perf_counter() - start,
        examples=len(prompts),
        dpo_pairs=len(pairs),
        sft_final_loss=sft_losses[-1] if sft_losses else float("nan"),
        final_loss=(dpo_losses or sft_losses or [float("nan")])[-1],
    )
    return Stages(adapter_config=config, sft=sft_tensors, dpo=dpo_tensors)


class LabelScorer:
    """P(policy label | query) from the base model plus a LoRA adapter, in float32."""

    def __init__(
        self,
        base_dir: Path,
        adapter: Mapping[str, np.ndarray[Any, Any]],
        adapter_config: Mapping[str, Any],
        *,
        max_chars: int,
        device: str = "cpu",
    ) -> None:
        import torch
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

        model, self.tokenizer = load_base(base_dir, device)
        config = LoraConfig(**{k: v for k, v in adapter_config.items() if k not in _NOT_LORA_ARGS})
        # The adapter's own tensors replace peft's random initialisation.
        self.model = get_peft_model(model, config)
        result: Any = set_peft_model_state_dict(
            self.model, {k: torch.from_numpy(np.asarray(v)) for k, v in adapter.items()}
        )
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing:
            raise RouterError(
                f"causallm: the adapter lacks {len(missing)} tensor(s): {missing[:3]}"
            )
        self.model.eval()
        self.device, self.max_chars = device, max_chars
        self._labels = [
            self.tokenizer(completion_for(x), add_special_tokens=False)["input_ids"]
            for x in POLICIES
        ]

    def probabilities(self, texts: Sequence[str]) -> F64:
        """(n, len(POLICIES)): each label's probability, normalised over the labels."""
        import torch

        rows: list[list[int]] = []
        spans: list[tuple[int, int]] = []
        for text in texts:
            prompt = self.tokenizer(prompt_for(text, self.max_chars))["input_ids"]
            for label in self._labels:
                rows.append(prompt + label)
                spans.append((len(prompt), len(prompt) + len(label)))
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        # Scoped, not torch.set_grad_enabled(False): that would switch gradients off for any
        # training later in the same thread (the trainer fits other routers in this process).
        with torch.inference_mode():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        logp = torch.log_softmax(logits.logits.float(), dim=-1).to("cpu")
        scores = np.empty(len(rows), dtype=np.float64)
        for i, (a, b) in enumerate(spans):
            # Token t is predicted at position t - 1.
            positions = torch.arange(a - 1, b - 1)
            scores[i] = float(logp[i, positions, ids[i, a:b]].sum())
        per_label = scores.reshape(len(texts), len(POLICIES))
        per_label -= per_label.max(axis=1, keepdims=True)
        probs = np.exp(per_label)
        return np.asarray(probs / probs.sum(axis=1, keepdims=True), dtype=np.float64)


def build_tiny_base(folder: Path, texts: Sequence[str], *, seed: int = 0) -> Path:
    """A two-layer Llama with 16-wide hidden states, randomly initialised, and a word-level
    tokenizer trained on ``texts``, saved to ``folder`` as a local base model (safetensors).

    No registry here serves a pretrained causal LM: this is the base for tests and smoke runs
    of the pipeline (it learns the labels of queries like its training ones, nothing more);
    an operator names a real base model (``base_model``) for anything else."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    # Special tokens by role (bandit reads a literal passed as ``*_token`` as a password).
    special = {"unk_token": "[UNK]", "pad_token": "[PAD]", "bos_token": "<s>", "eos_token": "</s>"}
    words = Tokenizer(models.WordLevel(unk_token=special["unk_token"]))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Every word a prompt or a label can hold: the vocabulary of training and serving alike.
    labels = "".join(completion_for(p) for p in POLICIES)
    corpus = [prompt_for(t, len(t)) + labels for t in texts]
    words.train_from_iterator(
        corpus, trainers.WordLevelTrainer(special_tokens=list(special.values()))
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, **special)  # type: ignore[no-untyped-call]
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        # Wide initial weights: with the default 0.02 a 16-wide model's logits are nearly
        # uniform whatever the (normalised) hidden state, so LoRA on the blocks alone could
        # not move the next-token distribution far enough to name a label.
        initializer_range=0.3,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(str(folder))  # type: ignore[no-untyped-call]
    tokenizer.save_pretrained(str(folder))
    return folder
