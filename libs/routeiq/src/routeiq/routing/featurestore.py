"""Feature vectors of dataset files, cached on disk.

The numpy MiniLM embeds about 40 sentences a second on a small CPU, so a dataset of a few
thousand prompts would cost minutes on every run (the static pipeline needs seconds, and is
cached all the same). Vectors are cached as ``.npy`` files (read with ``allow_pickle=False``)
keyed by the sha256 of the pipeline's id and the exact list of texts; the key is a hash, so
the cache never holds text.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.featurizer import Featurizer


class FeatureStore:
    """``embed(texts)`` through one feature pipeline, with a disk cache under ``cache_dir``."""

    def __init__(self, *, cache_dir: Path, featurizer: Featurizer) -> None:
        self._dir = cache_dir / "features"
        self.featurizer = featurizer

    @property
    def features_id(self) -> str:
        return self.featurizer.id

    def key(self, texts: Sequence[str]) -> str:
        digest = hashlib.sha256(f"{self.featurizer.id}|{len(texts)}".encode())
        for text in texts:
            digest.update(b"\x00")
            digest.update(text.encode("utf-8", errors="surrogatepass"))
        return digest.hexdigest()

    def path(self, texts: Sequence[str]) -> Path:
        return self._dir / f"{self.key(texts)}.npy"

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """(n, dimension) float32 feature vectors, from the cache when present."""
        path = self.path(texts)
        if path.is_file():
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), self.featurizer.dimension):
                return np.asarray(cached, dtype=np.float32)
        vectors = self.featurizer.encode(list(texts))
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
        """Uncached vectors (probe queries: a handful of texts)."""
        return self.featurizer.encode(list(texts))
