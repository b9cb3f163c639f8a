"""The feature pipeline (``Featurizer``) and how one is loaded: from a spec and its files, from
a folder's ``features.json``, or the packaged MiniLM."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.embedding import DIMENSION as MINILM_DIMENSION
from routeiq.routing.embedding import MiniLMEncoder, packaged_model_dir
from routeiq.routing.featurizer.encoders import (
    F32,
    NgramSketch,
    StaticEncoder,
    TokenReader,
    shared_minilm,
)
from routeiq.routing.featurizer.spec import (
    SPEC_FILE,
    STATIC_TOKENIZER,
    STATIC_WEIGHTS,
    FeatureError,
    FeatureSpec,
)

__all__ = ["Featurizer", "load_featurizer", "minilm_pipeline", "read_pipeline", "sha256_file"]


class Featurizer:
    """Texts → feature vectors of ``spec.dimension`` float32, per ``spec``."""

    def __init__(
        self,
        spec: FeatureSpec,
        *,
        static: StaticEncoder | None = None,
        minilm: MiniLMEncoder | None = None,
        files: Mapping[str, Path] | None = None,
    ) -> None:
        self.spec = spec
        self._static = static
        self._minilm = minilm
        self._files = dict(files or {})
        self._sketch = (
            NgramSketch(
                spec.sketch_dim,
                ngrams=spec.sketch_ngrams,
                seed=spec.sketch_seed,
                probes=spec.sketch_probes,
            )
            if spec.sketch_dim
            else None
        )
        self._sketch_tokens: Any = None
        if spec.encoder == "static" and static is None:
            raise FeatureError("a static pipeline needs its encoder")
        if spec.encoder == "minilm" and minilm is None:
            raise FeatureError("a minilm pipeline needs the MiniLM encoder")
        if self._sketch is not None and spec.encoder == "minilm":
            # MiniLM's own vocabulary, without special tokens, feeds the sketch.
            self._sketch_tokens = TokenReader(
                packaged_model_dir() / "tokenizer.json",
                max_tokens=spec.max_tokens,
                tail_tokens=spec.tail_tokens,
                drop_unknown=False,
            )

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    def encode(self, texts: Sequence[str]) -> F32:
        """(n, dimension) unit-norm float32 feature vectors."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids: list[NDArray[np.int64]] | None = None
        if self._static is not None:
            ids = self._static.token_ids(texts)
            dense = self._static.pool(ids)
        else:
            assert self._minilm is not None
            dense = self._minilm.encode(texts)
        if self._sketch is None:
            return dense
        if ids is None:
            ids = self._sketch_tokens(texts)
        w = self.spec.dense_weight
        sketch = self._sketch.sketch(ids)
        return np.hstack([dense * np.float32(np.sqrt(w)), sketch * np.float32(np.sqrt(1 - w))])

    __call__ = encode

    def save(self, folder: Path) -> list[str]:
        """Write ``features.json`` and the encoder's files into ``folder``; return the names."""
        folder.mkdir(parents=True, exist_ok=True)
        names = [SPEC_FILE]
        for name, source in self._files.items():
            if source.resolve() != (folder / name).resolve():
                shutil.copyfile(source, folder / name)
            names.append(name)
        (folder / SPEC_FILE).write_text(json.dumps(self.spec.to_dict(), indent=2, sort_keys=True))
        return names


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in chunks (pipeline weights, bundle files)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def load_featurizer(folder: Path | None, spec: FeatureSpec) -> Featurizer:
    """The pipeline ``spec`` describes, its files read from ``folder`` and checked against it.

    A MiniLM pipeline needs no files (the weights are packaged; their fingerprint must match
    when the spec names one); a static one needs ``static.safetensors`` (whose sha256 must be
    ``encoder_sha256``) and ``static.tokenizer.json``.
    """
    if spec.encoder == "minilm":
        encoder = shared_minilm()
        if spec.encoder_sha256 and spec.encoder_sha256 != encoder.fingerprint:
            raise FeatureError(
                f"the pipeline was built on MiniLM weights {spec.encoder_sha256}, this "
                f"process has {encoder.fingerprint}"
            )
        if encoder.fingerprint and not spec.encoder_sha256:
            spec = replace(spec, encoder_sha256=encoder.fingerprint)
        return Featurizer(spec, minilm=encoder)
    if folder is None:
        raise FeatureError("a static pipeline is read from a folder")
    weights, tokenizer = folder / STATIC_WEIGHTS, folder / STATIC_TOKENIZER
    for path in (weights, tokenizer):
        if not path.is_file():
            raise FeatureError(f"{path.name} is missing from {folder}")
    actual = sha256_file(weights)
    if actual != spec.encoder_sha256:
        raise FeatureError(
            f"{STATIC_WEIGHTS} has sha256 {actual}, the feature spec says {spec.encoder_sha256}"
        )
    static = StaticEncoder(
        tokenizer, weights, max_tokens=spec.max_tokens, tail_tokens=spec.tail_tokens
    )
    if static.dimension != spec.dense_dim:
        raise FeatureError(
            f"the static encoder is {static.dimension}-d, spec says {spec.dense_dim}"
        )
    return Featurizer(
        spec, static=static, files={STATIC_WEIGHTS: weights, STATIC_TOKENIZER: tokenizer}
    )


def read_pipeline(folder: Path) -> Featurizer:
    """A pipeline saved with ``Featurizer.save`` (or ``build_static``)."""
    path = folder / SPEC_FILE
    if not path.is_file():
        raise FeatureError(f"no {SPEC_FILE} in {folder}: build one with `routeiq features build`")
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise FeatureError(f"{path} is not JSON: {exc}") from exc
    return load_featurizer(folder, FeatureSpec.from_dict(raw))


def minilm_pipeline(*, sketch_dim: int = 0, sketch_seed: int = 0) -> Featurizer:
    """The packaged MiniLM, optionally with a sketch (no files needed)."""
    spec = FeatureSpec(
        "minilm",
        shared_minilm().fingerprint,
        MINILM_DIMENSION,
        sketch_dim=sketch_dim,
        sketch_seed=sketch_seed,
        dense_weight=0.5 if sketch_dim else 1.0,
    )
    return load_featurizer(None, spec)
