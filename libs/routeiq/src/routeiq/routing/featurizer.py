"""The features a router reads, as one versioned pipeline that travels inside its bundle.

A feature vector is a dense sentence encoding, optionally followed by a sketch of the query's
token n-grams, each part L2-normalised and weighted so the whole vector has unit norm:

    x = [√w · dense(text) ‖ √(1 − w) · sketch(text)]

Two dense encoders:

* ``minilm``: the packaged all-MiniLM-L6-v2, a 6-layer transformer run in numpy
  (``embedding.py``): about 20 ms per query on a small CPU;
* ``static``: a static embedding distilled offline from the same packaged MiniLM with
  model2vec (every vocabulary token's MiniLM output, PCA-reduced and frequency-weighted); a
  query's vector is the mean of its tokens' rows: about 0.2 ms with the sketch, tokenizing
  included (bench/gateway.py).

The sketch hashes every token unigram and bigram (keyed by ``sketch_seed``) with a random sign
into ``sketch_dim`` buckets, weighted 1 + log(count): a fixed-size, signed feature-hashing view
of the query's wording, which sentence encoders blur (GSM8K's hard and easy questions look
alike to MiniLM but not in their numbers and verbs). Like any embedding it is derived data, not
text: the gateway never logs the text, but a reader who knows the seed can test whether a given
phrase occurs in a logged query, which is why topics are access-controlled and the seed can be
an operator secret.

``FeatureSpec`` names everything that changes a vector (encoder, the sha256 of its weights,
dimensions, seed, weight); its ``id`` is what events and shards record as ``embedding_model``,
so the trainer only ever trains on vectors the serving pipeline would compute.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError
from routeiq.routing.embedding import DIMENSION as MINILM_DIMENSION
from routeiq.routing.embedding import MODEL_NAME as MINILM_NAME
from routeiq.routing.embedding import MiniLMEncoder, packaged_model_dir

F32 = NDArray[np.float32]

SPEC_FILE = "features.json"
STATIC_WEIGHTS = "static.safetensors"
STATIC_TOKENIZER = "static.tokenizer.json"
ENCODERS = ("minilm", "static")
# Longest feature vector a contract or shard accepts (a bound against garbage, not a design
# limit: the defaults are 384 and 768).
MAX_DIMENSION = 4096
# Tokens a static pipeline reads, and how many of them come from the end of a long prompt:
# a long prompt states its task up front and its actual question last (LLMRouter's puzzles,
# few-shot prompts), so the first 128 and the last 128 tokens route better than the first
# 128 alone or the first 512 (routeiq eval, docs/routing.md), while bounding the
# tokenizer's work on long prompts.
STATIC_MAX_TOKENS = 256
STATIC_TAIL_TOKENS = 128
# Characters kept before tokenising: tokens are rarely longer than 8 characters, so this
# keeps every token the truncation would keep while bounding the tokenizer's work.
_CHARS_PER_TOKEN_CAP = 8
# Characters per token a pipeline that reads both ends of a prompt budgets (TokenReader).
_CHARS_PER_TOKEN_BOTH_ENDS = 4
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class FeatureError(ConfigError):
    """A feature pipeline is malformed, or its files do not match its spec."""


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that determines a feature vector."""

    encoder: str  # "minilm" | "static"
    encoder_sha256: str  # minilm: the packaged weights' fingerprint; static: its weights file
    dense_dim: int
    sketch_dim: int = 0
    sketch_ngrams: int = 2
    sketch_seed: int = 0
    sketch_probes: int = 2  # buckets per n-gram: fewer unlucky collisions
    dense_weight: float = 1.0  # share of the squared norm given to the dense part
    max_tokens: int = 512
    distilled_from: str | None = None  # static: the model it was distilled from
    # Of ``max_tokens``, how many a prompt longer than that gives from its end (0: the
    # first ``max_tokens`` only, as every pipeline before this field).
    tail_tokens: int = 0

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise FeatureError(f"unknown encoder {self.encoder!r}; known: {', '.join(ENCODERS)}")
        if not 0 < self.dense_dim <= MAX_DIMENSION or not 0 <= self.sketch_dim <= MAX_DIMENSION:
            raise FeatureError(f"dimensions {self.dense_dim}+{self.sketch_dim} out of range")
        if self.dimension > MAX_DIMENSION:
            raise FeatureError(f"{self.dimension} features; at most {MAX_DIMENSION}")
        if self.sketch_ngrams not in (1, 2, 3):
            raise FeatureError("sketch_ngrams must be 1, 2 or 3")
        if not 1 <= self.sketch_probes <= 4:
            raise FeatureError("sketch_probes must be 1 to 4")
        if not 0.0 < self.dense_weight <= 1.0 or (self.sketch_dim == 0 and self.dense_weight != 1):
            raise FeatureError(
                "dense_weight must be in (0, 1], and exactly 1 without a sketch "
                f"(got {self.dense_weight} with sketch_dim {self.sketch_dim})"
            )
        if self.max_tokens < 1:
            raise FeatureError("max_tokens must be at least 1")
        if not 0 <= self.tail_tokens < self.max_tokens:
            raise FeatureError("tail_tokens must be at least 0 and less than max_tokens")

    @property
    def dimension(self) -> int:
        return self.dense_dim + self.sketch_dim

    @property
    def is_legacy_minilm(self) -> bool:
        """MiniLM alone: the vectors every gateway logged before pipelines had ids."""
        return self.encoder == "minilm" and self.sketch_dim == 0

    @cached_property
    def id(self) -> str:
        """A stable name for these features: events' and shards' ``embedding_model``.

        Cached (the spec is frozen): a gateway reads it several times per request, and the
        hash of the spec's JSON costs about 15 µs each time."""
        if self.is_legacy_minilm:
            return MINILM_NAME
        fields = asdict(self)
        if not self.tail_tokens:
            # Pipelines from before the field keep their ids (and their bundles and shards).
            del fields["tail_tokens"]
        digest = hashlib.sha256(
            json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()[:12]
        sketch = f"+sketch{self.sketch_dim}" if self.sketch_dim else ""
        return f"routeiq/{self.encoder}{self.dense_dim}{sketch}@{digest}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": self.id, "dimension": self.dimension}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FeatureSpec:
        """A spec from a bundle manifest or ``features.json``; a manifest written before
        pipelines existed (``embedding_model`` = MiniLM) reads as the MiniLM pipeline."""
        if "encoder" not in raw:
            model = raw.get("embedding_model", MINILM_NAME)
            if model != MINILM_NAME:
                raise FeatureError(f"unknown legacy embedding model {model!r}")
            return cls("minilm", str(raw.get("encoder_fingerprint") or ""), MINILM_DIMENSION)
        fields = set(cls.__dataclass_fields__)
        try:
            spec = cls(**{k: v for k, v in raw.items() if k in fields})
        except TypeError as exc:
            raise FeatureError(f"malformed feature spec: {exc}") from exc
        if "id" in raw and raw["id"] != spec.id:
            raise FeatureError(f"feature spec id {raw['id']!r} does not match its fields")
        return spec


_ID = re.compile(r"routeiq/(?:minilm|static)(\d+)(?:\+sketch(\d+))?@[0-9a-f]{12}")


def dimension_of(features_id: str) -> int | None:
    """The vector length a pipeline id implies (None for a name we did not mint)."""
    if features_id == MINILM_NAME:
        return MINILM_DIMENSION
    found = _ID.fullmatch(features_id)
    if found is None:
        return None
    return int(found.group(1)) + int(found.group(2) or 0)


# ---------------------------------------------------------------- parts


class TokenReader:
    """The token ids a pipeline reads from a text (no special tokens; unknown tokens dropped
    unless ``drop_unknown`` is false, as the MiniLM pipelines' sketch has always kept them).

    Without a tail: the first ``max_tokens`` of the text's first ``max_tokens × 8``
    characters (tokens are rarely longer, and the clip bounds the tokenizer's work).

    With ``tail_tokens``: a text of at most ``max_tokens × 4`` characters is read whole (up to
    ``max_tokens``); a longer one gives the first ``max_tokens − tail_tokens`` tokens of its
    first ``4 ×`` that many characters and the last ``tail_tokens`` tokens of its last
    ``4 ×`` that many. Four characters a token is about what English text averages under
    MiniLM's WordPiece; bounding by characters keeps the tokenizer's work (most of a static
    pipeline's time) at the 128-token pipeline's while reading both ends. The tail's first
    token may be the end of a word. Deterministic, and the same in batches (the trainer) as
    one text at a time (the gateway).
    """

    def __init__(
        self,
        tokenizer_path: Path,
        *,
        max_tokens: int,
        tail_tokens: int = 0,
        drop_unknown: bool = True,
    ) -> None:
        from tokenizers import Tokenizer

        try:
            self.head = Tokenizer.from_file(str(tokenizer_path))
            self.tail = Tokenizer.from_file(str(tokenizer_path)) if tail_tokens else None
        except Exception as exc:
            raise FeatureError(f"cannot read the tokenizer {tokenizer_path}: {exc!r}") from exc
        self.head.no_padding()
        self.head.enable_truncation(max_length=max_tokens)
        self.unk = self.head.token_to_id("[UNK]") if drop_unknown else None
        # tokenizers' Python objects are not safe to use from two threads at once with
        # truncation enabled ("Already borrowed"): one caller at a time.
        self._lock = threading.Lock()
        if self.tail is None:
            self.whole_chars = max_tokens * _CHARS_PER_TOKEN_CAP
            return
        self.tail.no_padding()
        self.tail.enable_truncation(max_length=tail_tokens, direction="left")
        self.whole_chars = max_tokens * _CHARS_PER_TOKEN_BOTH_ENDS
        self.head_chars = (max_tokens - tail_tokens) * _CHARS_PER_TOKEN_BOTH_ENDS
        self.tail_chars = tail_tokens * _CHARS_PER_TOKEN_BOTH_ENDS
        self.keep_head = max_tokens - tail_tokens

    def __call__(self, texts: Sequence[str]) -> list[NDArray[np.int64]]:
        if self.tail is None:
            return self._encode(self.head, [t[: self.whole_chars] for t in texts])
        long = [i for i, t in enumerate(texts) if len(t) > self.whole_chars]
        clipped = list(texts)
        for i in long:
            clipped[i] = texts[i][: self.head_chars]
        heads = self._encode(self.head, clipped)
        if long:
            tails = self._encode(self.tail, [texts[i][-self.tail_chars :] for i in long])
            for i, tail in zip(long, tails, strict=True):
                heads[i] = np.concatenate([heads[i][: self.keep_head], tail])
        return heads

    def _encode(self, tokenizer: Any, texts: list[str]) -> list[NDArray[np.int64]]:
        with self._lock:
            if len(texts) == 1:  # the gateway's case: skip the batch machinery
                encodings = [tokenizer.encode(texts[0], add_special_tokens=False)]
            else:
                encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        out = []
        for e in encodings:
            ids = np.asarray(e.ids, dtype=np.int64)
            out.append(ids[ids != self.unk] if self.unk is not None else ids)
        return out


class StaticEncoder:
    """Mean of per-token vectors (model2vec's format: a tokenizer and one embedding matrix).

    Matches ``model2vec.StaticModel.encode`` (no special tokens, unknown tokens dropped, mean
    pooling, L2 normalisation) on texts within ``max_tokens``; a unit test compares the two.
    """

    def __init__(
        self, tokenizer_path: Path, weights_path: Path, *, max_tokens: int, tail_tokens: int = 0
    ) -> None:
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(weights_path))
            self.table = np.ascontiguousarray(tensors["embeddings"], dtype=np.float32)
        except (OSError, KeyError, ValueError, Exception) as exc:
            raise FeatureError(f"cannot read the static encoder: {exc!r}") from exc
        self.token_ids = TokenReader(tokenizer_path, max_tokens=max_tokens, tail_tokens=tail_tokens)

    @property
    def dimension(self) -> int:
        return int(self.table.shape[1])

    def pool(self, ids: Sequence[NDArray[np.int64]]) -> F32:
        if len(ids) == 1 and ids[0].size:  # the gateway's case, in fewer array calls
            v = self.table[ids[0]].mean(axis=0)
            one: F32 = (v / max(float(np.sqrt(v @ v)), 1e-12))[None, :].astype(np.float32)
            return one
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        for i, row in enumerate(ids):
            if row.size:
                out[i] = self.table[row].mean(axis=0)
        return _unit(out)


class NgramSketch:
    """Signed feature hashing of token n-grams into ``dim`` buckets (unit norm).

    Each n-gram lands in ``probes`` buckets (independent hashes): with 512 buckets a single
    hash makes the quality of a router depend measurably on which n-grams happen to collide
    (APGR on GSM8K ranged 0.61-0.64 over hash seeds); two probes halve that spread.
    """

    def __init__(self, dim: int, *, ngrams: int = 2, seed: int = 0, probes: int = 2) -> None:
        self.dim = dim
        self.ngrams = ngrams
        self._seeds = _splitmix(np.array([seed * 7 + p for p in range(probes)], dtype=np.uint64))

    def sketch(self, ids: Sequence[NDArray[np.int64]]) -> F32:
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for i, row in enumerate(ids):
            grams = [_gram_keys(row, n) for n in range(1, self.ngrams + 1) if row.size >= n]
            if not grams:
                continue
            keys, counts = np.unique(np.concatenate(grams), return_counts=True)
            values = 1.0 + np.log(counts)
            # Every probe's hash at once (probes × n-grams): a gateway featurises one query
            # between other work, where each numpy call costs more than its arithmetic.
            h = _splitmix(keys[None, :] ^ self._seeds[:, None])
            # One sign per n-gram for all its probes: two probes in the same bucket add up
            # instead of cancelling (a one-token query never sketches to 0).
            signed = np.where(h[0] >> np.uint64(63), -values, values)
            buckets = (h % np.uint64(self.dim)).astype(np.int64).ravel()
            weights = np.tile(signed, len(self._seeds))
            out[i] = np.bincount(buckets, weights=weights, minlength=self.dim)
        return _unit(out)


def _gram_keys(ids: NDArray[np.int64], n: int) -> NDArray[np.uint64]:
    """One 64-bit key per n-gram (token ids are < 2^20, so n ≤ 3 fits without collisions)."""
    u = ids.astype(np.uint64)
    key = u[: len(u) - n + 1].copy()
    for k in range(1, n):
        key = (key << np.uint64(20)) | u[k : len(u) - n + 1 + k]
    return key | (np.uint64(n) << np.uint64(62))


def _splitmix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser: a fast, well-mixed 64-bit hash (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)


def _unit(x: F32) -> F32:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


@cache
def shared_minilm() -> MiniLMEncoder:
    """One packaged MiniLM per process (~90 MB of weights), shared by every pipeline."""
    return MiniLMEncoder()


# ---------------------------------------------------------------- the pipeline


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

    @property
    def fingerprint(self) -> str:
        return self.spec.encoder_sha256

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


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    actual = sha256_path(weights)
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
        sha256_path(tmp / STATIC_WEIGHTS),
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
