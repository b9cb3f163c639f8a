"""A tiny causal LM built from a config (no download) and queries whose oracle cells are
known: what the causal-LM router's unit and end-to-end tests train on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from routeiq.routing.routers import TrainingData
from routeiq.routing.routers.causallm_lm import build_tiny_base as tiny_base

__all__ = ["PARAMS", "oracle_data", "tiny_base"]

SUBJECTS = ["rivers", "series", "graphs", "primes", "forests", "matrices", "stars", "songs"]
# (template, quality of small, quality of large): Standard, Complex, Ambiguous cells.
KINDS = [
    ("name the capital near the {}", 1.0, 1.0),
    ("prove the bound on {} rigorously", 0.0, 1.0),
    ("guess the riddle of the {}", 0.0, 0.0),
]


def oracle_data(models: Sequence[str], seed: int = 0) -> TrainingData:
    """96 queries of three kinds whose graded answers (cheap model first) fall in the
    Standard, Complex and Ambiguous cells, a few flipped as judges disagree."""
    rng = np.random.default_rng(seed)
    texts, quality = [], []
    for template, q_small, q_large in KINDS:
        for subject in SUBJECTS:
            for copy in range(4):
                texts.append(template.format(subject) + f" case {copy}")
                quality.append([q_small, q_large])
    q = np.asarray(quality)
    flip = rng.random(q.shape) < 0.05  # a few judges disagree
    q = np.where(flip, 1.0 - q, q)
    n = len(texts)
    return TrainingData(
        embeddings=np.zeros((n, 4), dtype=np.float32), quality=q, models=tuple(models), texts=texts
    )


PARAMS = {
    "lora_r": 4,
    "lora_alpha": 8,
    "batch_size": 16,
    "sft_epochs": 2,
    "sft_lr": 1e-2,
    "dpo_epochs": 2,
    "dpo_lr": 5e-3,
    "max_length": 48,
}
