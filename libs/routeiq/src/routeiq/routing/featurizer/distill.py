"""Static pipelines: distilled from the packaged MiniLM with model2vec, written atomically,
and every pipeline opened by its name (``open_pipeline``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.embedding import MODEL_NAME as MINILM_NAME
from routeiq.routing.embedding import packaged_model_dir
from routeiq.routing.featurizer.encoders import shared_minilm
from routeiq.routing.featurizer.pipeline import (
    Featurizer,
    minilm_pipeline,
    read_pipeline,
    sha256_file,
)
from routeiq.routing.featurizer.spec import (
    SPEC_FILE,
    STATIC_TOKENIZER,
    STATIC_WEIGHTS,
    FeatureError,
    FeatureSpec,
)

__all__ = [
    "DEFAULT_SKETCH_DIM",
    "PIPELINES",
    "STATIC_MAX_TOKENS",
    "STATIC_TAIL_TOKENS",
    "build_static",
    "open_pipeline",
    "write_static",
]


# Tokens a static pipeline reads, and how many of them come from the end of a long prompt:
# a long prompt states its task up front and its actual question last (LLMRouter's puzzles,
# few-shot prompts), so the first 128 and the last 128 tokens route better than the first
# 128 alone or the first 512 (routeiq eval, docs/routing.md), while bounding the
# tokenizer's work on long prompts.
STATIC_MAX_TOKENS = 256
STATIC_TAIL_TOKENS = 128


def build_static(
    folder: Path,
    *,
    pca_dims: int = 256,
    sketch_dim: int = 512,
    sketch_seed: int = 0,
    dense_weight: float = 0.5,
    max_tokens: int = STATIC_MAX_TOKENS,
    tail_tokens: int = STATIC_TAIL_TOKENS,
) -> Featurizer:
    """Distil the packaged MiniLM into a static encoder with model2vec and save the pipeline.

    Offline (the teacher is the packaged weights) and about 15 s on a small CPU; needs the
    training extra (torch, transformers, model2vec). A folder that already holds the same
    pipeline (same parameters) is reused as it is.
    """
    wanted: dict[str, float] = {
        "sketch_dim": sketch_dim,
        "sketch_seed": sketch_seed,
        "dense_weight": dense_weight if sketch_dim else 1.0,
        "max_tokens": max_tokens,
        "tail_tokens": tail_tokens,
    }
    try:
        existing = read_pipeline(folder) if (folder / SPEC_FILE).is_file() else None
    except FeatureError:
        existing = None  # written by an older version, or damaged: build it again
    if existing is not None and existing.spec.encoder == "static":
        spec = existing.spec
        if spec.dense_dim == pca_dims:
            if all(getattr(spec, k) == v for k, v in wanted.items()):
                return existing
            # The same distilled table with other pipeline parameters: no need to distil.
            from safetensors.numpy import load_file

            table = load_file(str(folder / STATIC_WEIGHTS))["embeddings"]
            keep = folder.with_name(folder.name + ".tokenizer")
            shutil.copyfile(folder / STATIC_TOKENIZER, keep)
            try:
                return write_static(
                    folder,
                    table,
                    keep,
                    sketch_dim=sketch_dim,
                    sketch_seed=sketch_seed,
                    dense_weight=dense_weight,
                    max_tokens=max_tokens,
                    tail_tokens=tail_tokens,
                    distilled_from=spec.distilled_from,
                )
            finally:
                keep.unlink(missing_ok=True)
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise FeatureError(
            "distilling the static encoder needs model2vec[distill] (routeiq-lib[train])"
        ) from exc
    import contextlib
    import io

    teacher = packaged_model_dir()
    # model2vec and transformers print progress bars and a load report: keep them out of
    # `make up`'s output, and in the error if distillation fails.
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            model = distill(model_name=str(teacher), pca_dims=pca_dims)
    except Exception as exc:
        raise FeatureError(
            f"distilling {teacher} failed: {exc!r}; output: {chatter.getvalue()[-2000:]}"
        ) from exc
    tmp = folder.with_name(folder.name + ".distil")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    from safetensors.numpy import load_file

    try:
        table = load_file(str(tmp / "model.safetensors"))["embeddings"]
        return write_static(
            folder,
            table,
            tmp / "tokenizer.json",
            sketch_dim=sketch_dim,
            sketch_seed=sketch_seed,
            dense_weight=dense_weight,
            max_tokens=max_tokens,
            tail_tokens=tail_tokens,
            distilled_from=f"{MINILM_NAME}@{shared_minilm().fingerprint}",
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_static(
    folder: Path,
    table: NDArray[Any],
    tokenizer_path: Path,
    *,
    sketch_dim: int = 0,
    sketch_seed: int = 0,
    dense_weight: float = 0.5,
    max_tokens: int = STATIC_MAX_TOKENS,
    tail_tokens: int = 0,
    distilled_from: str | None = None,
) -> Featurizer:
    """Save a static pipeline from a token-embedding table (vocab, d) and its tokenizer.

    Written into a sibling folder and renamed into place, so a reader never sees half of it.
    """
    from safetensors.numpy import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({"embeddings": np.ascontiguousarray(table)}, str(tmp / STATIC_WEIGHTS))
    shutil.copyfile(tokenizer_path, tmp / STATIC_TOKENIZER)
    spec = FeatureSpec(
        "static",
        sha256_file(tmp / STATIC_WEIGHTS),
        int(table.shape[1]),
        sketch_dim=sketch_dim,
        sketch_seed=sketch_seed,
        dense_weight=dense_weight if sketch_dim else 1.0,
        max_tokens=max_tokens,
        tail_tokens=tail_tokens,
        distilled_from=distilled_from,
    )
    (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(folder)
    return read_pipeline(folder)


PIPELINES = ("static", "minilm", "minilm+sketch")
DEFAULT_SKETCH_DIM = 512


def open_pipeline(
    kind: str,
    *,
    folder: Path | None = None,
    sketch_seed: int = 0,
    max_tokens: int = STATIC_MAX_TOKENS,
    tail_tokens: int = STATIC_TAIL_TOKENS,
) -> Featurizer:
    """A pipeline by name: ``static`` (static MiniLM + sketch, the default: read from
    ``folder``, distilled there first if it is empty; ``max_tokens`` / ``tail_tokens`` as in
    ``FeatureSpec``), ``minilm`` (the packaged MiniLM alone, what gateways logged before
    pipelines) or ``minilm+sketch``."""
    if kind == "minilm":
        return minilm_pipeline()
    if kind == "minilm+sketch":
        return minilm_pipeline(sketch_dim=DEFAULT_SKETCH_DIM, sketch_seed=sketch_seed)
    if kind != "static":
        raise FeatureError(f"unknown feature pipeline {kind!r}; known: {', '.join(PIPELINES)}")
    if folder is None:
        raise FeatureError("the static pipeline lives in a folder: name one")
    return build_static(
        folder,
        sketch_dim=DEFAULT_SKETCH_DIM,
        sketch_seed=sketch_seed,
        max_tokens=max_tokens,
        tail_tokens=tail_tokens,
    )
