"""Feature vectors on the gateway's hot path: the default pipeline's and each bundle's.

Every pipeline gets a bounded LRU keyed by a hash of the text (never the text). The static
pipeline costs a fraction of a millisecond, so it runs in the request's thread; MiniLM costs
about 20 ms, so one worker thread batches concurrent requests into one forward pass
(``BatchingEmbedder``). A swap to a bundle with another pipeline adds that pipeline's cache;
the least recently used beyond ``MAX_PIPELINES`` are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from routeiq.routing.embedding import BatchingEmbedder, EmbeddingCache
from routeiq.routing.featurizer import Featurizer

Vector = NDArray[np.float32]
MAX_PIPELINES = 3


class FeatureService:
    """``embed`` (the default pipeline) and ``featurize`` (any pipeline) with caches."""

    def __init__(self, default: Featurizer, *, cache_size: int) -> None:
        self.default = default
        self._cache_size = cache_size
        self._paths: OrderedDict[str, EmbeddingCache | BatchingEmbedder] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def default_id(self) -> str:
        return self.default.id

    def fast(self, active: Featurizer | None) -> bool:
        """Whether a decision's features cost well under a millisecond (no MiniLM pass):
        the default pipeline's and the active bundle's (``None``: no bundle)."""
        pipelines = [self.default] + ([active] if active is not None else [])
        return all(p.spec.encoder != "minilm" for p in pipelines)

    def _path(self, featurizer: Featurizer) -> EmbeddingCache | BatchingEmbedder:
        with self._lock:
            path = self._paths.get(featurizer.id)
            if path is not None:
                self._paths.move_to_end(featurizer.id)
                return path
            cache = EmbeddingCache(featurizer, capacity=self._cache_size)
            path = BatchingEmbedder(cache) if featurizer.spec.encoder == "minilm" else cache
            self._paths[featurizer.id] = path
            while len(self._paths) > MAX_PIPELINES:
                _, dropped = self._paths.popitem(last=False)
                if isinstance(dropped, BatchingEmbedder):
                    dropped.close()
            return path

    def embed(self, text: str) -> Vector:
        """The default pipeline's vector of one text."""
        return self.featurize(self.default, text)

    def featurize(self, featurizer: Featurizer, text: str) -> Vector:
        """``featurizer``'s vector of one text, through its cache."""
        path = self._path(featurizer)
        if isinstance(path, BatchingEmbedder):
            return path.embed(text)
        vector: Vector = path.embed([text])[0]
        return vector

    def featurize_many(self, featurizer: Featurizer, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors of several texts (probe queries) through the same cached path."""
        path = self._path(featurizer)
        if isinstance(path, BatchingEmbedder):
            return path.embed_many(texts)
        return path.embed(texts)

    def close(self) -> None:
        with self._lock:
            for path in self._paths.values():
                if isinstance(path, BatchingEmbedder):
                    path.close()
            self._paths.clear()
