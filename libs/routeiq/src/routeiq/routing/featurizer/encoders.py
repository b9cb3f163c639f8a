"""The parts a pipeline is made of: the token reader, the static encoder, the n-gram sketch
and the shared packaged MiniLM."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.embedding import MiniLMEncoder
from routeiq.routing.featurizer.spec import FeatureError

__all__ = ["F32", "NgramSketch", "StaticEncoder", "TokenReader", "shared_minilm"]

F32 = NDArray[np.float32]

# Characters kept before tokenising: tokens are rarely longer than 8 characters, so this
# keeps every token the truncation would keep while bounding the tokenizer's work.
_CHARS_PER_TOKEN_CAP = 8
# Characters per token a pipeline that reads both ends of a prompt budgets (TokenReader).
_CHARS_PER_TOKEN_BOTH_ENDS = 4
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


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
