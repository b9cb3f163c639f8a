"""``FeatureSpec``: everything that determines a feature vector, and the id it goes by."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from routeiq.errors import ConfigError
from routeiq.routing.embedding import DIMENSION as MINILM_DIMENSION
from routeiq.routing.embedding import MODEL_NAME as MINILM_NAME

__all__ = [
    "ENCODERS",
    "MAX_DIMENSION",
    "SPEC_FILE",
    "STATIC_TOKENIZER",
    "STATIC_WEIGHTS",
    "FeatureError",
    "FeatureSpec",
    "dimension_of",
]

SPEC_FILE = "features.json"
STATIC_WEIGHTS = "static.safetensors"
STATIC_TOKENIZER = "static.tokenizer.json"
ENCODERS = ("minilm", "static")
# Longest feature vector a contract or shard accepts (a bound against garbage, not a design
# limit: the defaults are 384 and 768).
MAX_DIMENSION = 4096


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
