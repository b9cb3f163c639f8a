"""What every strategy shares: the candidates (``ModelOption``), the request (``RouteInput``),
the answer (``Choice``), the ``Strategy`` base class and its parameter checks."""

from __future__ import annotations

import abc
import random as _random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError
from routeiq.routing.features import CHARS_PER_TOKEN, TextFeatures, text_features
from routeiq.routing.featurizer import Featurizer

if TYPE_CHECKING:
    from routeiq.routing.strategies.holder import BundleHolder

__all__ = ["Choice", "ModelOption", "RouteInput", "Strategy", "StrategyFactory"]


@dataclass(frozen=True)
class ModelOption:
    """A model group the gateway can call, with what routing needs to know about it."""

    name: str
    provider: str = "openai"
    input_price: float = 0.0  # USD per million tokens
    output_price: float = 0.0
    quality_rank: float = 0.0  # prior strength: higher is stronger
    expected_output_tokens: int = 256

    def est_cost(self, input_tokens: int, output_tokens: int | None = None) -> float:
        out = self.expected_output_tokens if output_tokens is None else output_tokens
        return (input_tokens * self.input_price + out * self.output_price) / 1e6


# eq=False: one per request, compared by identity (it caches vectors as it goes).
@dataclass(eq=False)
class RouteInput:
    """What a strategy may look at for one request. The text never leaves the process.

    Feature vectors are computed lazily, once per pipeline: ``embed`` computes the default
    pipeline's (``features_id``), ``featurize`` any other pipeline's (a bundle's own). Only
    some strategies need them; the engine asks for the one telemetry logs.
    """

    # Kept out of repr: the prompt must not reach a log line by way of a debug print.
    text: str = field(repr=False)
    _: KW_ONLY
    requested_model: str = "auto"
    unit_key: str = ""
    team: str | None = None  # rollouts enable teams
    domain: str | None = None
    embed: Callable[[str], NDArray[np.float32]] | None = None
    featurize: Callable[[Featurizer, str], NDArray[np.float32]] | None = None
    features_id: str | None = None
    embedding_ms: float = field(init=False, default=0.0)
    # Vectors computed so far, by pipeline id; text features on first use.
    _vectors: dict[str, NDArray[np.float32]] = field(init=False, repr=False, default_factory=dict)
    _features: TextFeatures | None = field(init=False, repr=False, default=None)

    @property
    def features(self) -> TextFeatures:
        if self._features is None:
            self._features = text_features(self.text)
        return self._features

    @property
    def est_tokens(self) -> int:
        """The prompt's estimated tokens (as ``TextFeatures.est_tokens``, without the rest
        of the text features: the cost-aware strategy needs only this, on the hot path)."""
        return max(1, round(len(self.text) / CHARS_PER_TOKEN))

    @property
    def has_embedding(self) -> bool:
        return bool(self._vectors)

    def _key(self, featurizer: Featurizer | None) -> str:
        if featurizer is None or self.featurize is None or featurizer.id == self.features_id:
            return self.features_id or "default"
        return featurizer.id

    def embedding(self, featurizer: Featurizer | None = None) -> NDArray[np.float32]:
        """The vector of ``featurizer``'s pipeline (default: the request's default one)."""
        key = self._key(featurizer)
        found = self._vectors.get(key)
        if found is not None:
            return found
        started = time.perf_counter()
        if key == (self.features_id or "default"):
            if self.embed is None:
                raise ConfigError("this route has no embedding function")
            vector = self.embed(self.text)
        else:
            assert featurizer is not None
            assert self.featurize is not None
            vector = self.featurize(featurizer, self.text)
        self.embedding_ms += (time.perf_counter() - started) * 1000.0
        self._vectors[key] = vector
        return vector

    def peek_embedding(
        self, featurizer: Featurizer | None = None
    ) -> tuple[str, NDArray[np.float32]] | None:
        """(pipeline id, vector) already computed: ``featurizer``'s if it was, else any."""
        key = self._key(featurizer)
        if key in self._vectors:
            return key, self._vectors[key]
        for other, vector in self._vectors.items():
            return other, vector
        return None


@dataclass(frozen=True)
class Choice:
    """A strategy's answer for one request."""

    model: str
    reason: str
    scores: dict[str, float | None] = field(default_factory=dict)
    router_version: str | None = None
    # True when the strategy itself randomises (random): the engine then logs 1/K propensities.
    uniform: bool = False
    # The strategy's own selection probabilities when it randomised this choice (a threshold
    # tie broken at random); None means it picked ``model`` with certainty.
    probabilities: Mapping[str, float] | None = None


class Strategy(abc.ABC):
    """A named, versioned routing strategy."""

    kind: ClassVar[str]
    version: ClassVar[str] = "1"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.params = dict(params or {})

    @classmethod
    def from_config(cls, name: str, params: Mapping[str, Any], *, holder: BundleHolder) -> Self:
        """How the registry builds a plugin strategy from the model file or the admin API:
        ``cls(name, params)``. One that reads the active learned router overrides this to
        keep ``holder`` (``holder.get()`` per request: model sync swaps the bundle)."""
        return cls(name, params)

    @abc.abstractmethod
    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        """Pick one of ``candidates`` (never empty, all available)."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "capabilities": sorted(self.capabilities),
            "params": self.params,
        }

    @property
    def needs_embedding(self) -> bool:
        return "needs_embedding" in self.capabilities

    def check_params(self, allowed: set[str]) -> None:
        """Refuse parameters this kind does not know, naming the ones it does."""
        unknown = set(self.params) - allowed
        if unknown:
            raise ConfigError(
                f"strategy {self.kind}: unknown parameter(s) {sorted(unknown)}; "
                f"allowed: {sorted(allowed)}"
            )

    def seeded_rng(self) -> _random.Random:
        """The strategy's own RNG, from its optional integer ``seed`` parameter."""
        seed = self.params.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"strategy {self.kind}: seed must be an integer, got {seed!r}")
        return _random.Random(seed)  # noqa: S311 - routing randomness, not crypto


StrategyFactory = Callable[[str, Mapping[str, Any]], Strategy]
