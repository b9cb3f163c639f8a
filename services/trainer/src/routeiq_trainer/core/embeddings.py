"""Query embeddings for dataset files, cached on disk.

The numpy MiniLM embeds about 40 sentences a second on a small CPU, so a dataset of a few
thousand prompts would cost minutes on every run. Embeddings are cached as ``.npy`` files
(read with ``allow_pickle=False``) keyed by the sha256 of the encoder's identity and the exact
list of texts; the key is a hash, so the cache never holds text.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from routeiq.routing.embedding import DIMENSION, MODEL_NAME, MiniLMEncoder


class EmbeddingStore:
    """``embed(texts)`` with a disk cache under ``cache_dir/embeddings``."""

    def __init__(self, *, cache_dir: Path, encoder: MiniLMEncoder | None = None) -> None:
        self._dir = cache_dir / "embeddings"
        self._encoder = encoder
        self._lock = threading.Lock()

    @property
    def encoder(self) -> MiniLMEncoder:
        """The packaged all-MiniLM-L6-v2 (loaded on first use: ~90 MB of weights)."""
        with self._lock:
            if self._encoder is None:
                self._encoder = MiniLMEncoder()
            return self._encoder

    def key(self, texts: Sequence[str]) -> str:
        digest = hashlib.sha256(f"{MODEL_NAME}|{DIMENSION}|{len(texts)}".encode())
        for text in texts:
            digest.update(b"\x00")
            digest.update(text.encode("utf-8"))
        return digest.hexdigest()

    def path(self, texts: Sequence[str]) -> Path:
        return self._dir / f"{self.key(texts)}.npy"

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """(n, 384) float32 L2-normalised embeddings, from the cache when present."""
        path = self.path(texts)
        if path.is_file():
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), DIMENSION):
                return np.asarray(cached, dtype=np.float32)
        vectors = self.encoder.encode(list(texts))
        self._dir.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves a torn file under the real name.
        fd, tmp = tempfile.mkstemp(dir=self._dir, suffix=".npy.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, vectors, allow_pickle=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return vectors

    def featurize(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Uncached embeddings (probe queries: a handful of texts)."""
        return self.encoder.encode(list(texts))
