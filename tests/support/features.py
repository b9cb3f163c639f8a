"""Small feature pipelines for tests: a static encoder from a random table, in milliseconds.

Distilling the real static encoder takes about 15 s and torch; these pipelines use the same
code path (tokenizer, table lookup, sketch) over the packaged MiniLM tokenizer with a random
token table, which is all a test of plumbing needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from routeiq.routing.embedding import packaged_model_dir
from routeiq.routing.featurizer import Featurizer, write_static


def tiny_static(
    folder: Path, *, dim: int = 16, sketch_dim: int = 32, seed: int = 0, **options: Any
) -> Featurizer:
    """A static pipeline over MiniLM's tokenizer with a seeded random (30522, dim) table;
    ``options`` (max_tokens, tail_tokens) go to ``write_static``, 128 and 0 unless given."""
    table = np.random.default_rng(seed).normal(size=(30522, dim)).astype(np.float16)
    return write_static(
        folder,
        table,
        packaged_model_dir() / "tokenizer.json",
        sketch_dim=sketch_dim,
        dense_weight=0.5 if sketch_dim else 1.0,
        **{"max_tokens": 128, "tail_tokens": 0, **options},
    )
