"""Routing strategies: given a query and the candidate models, which one should serve it.

A strategy returns a greedy choice, a score per candidate and a reason (a choice it had to
randomise, such as a tie at a threshold, carries its probabilities).
Exploration and A/B assignment happen around it, in ``engine.py``, so every strategy gets the
same propensity logging. Built-in kinds:

* ``random``     uniform over available candidates (its propensities are 1/K by construction);
* ``cheapest`` / ``strongest``  by price / by prior quality rank;
* ``threshold``  RouteLLM-style: strong-vs-weak win score, strong when the score clears a
                 threshold calibrated for a target share of strong calls;
* ``policy``     static map, keyword and length rules, domain overrides, cost-budget downgrade;
* ``learned``    the cost-aware policy over N candidates: the active router's expected
                 quality per candidate minus λ times its estimated cost, λ calibrated on
                 live traffic to a cost per 1k requests or a quality floor (``costpolicy``).
"""

from __future__ import annotations

import abc
import functools
import logging
import random as _random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError
from routeiq.routing.bundle import LoadedBundle
from routeiq.routing.costpolicy import Target, calibrate, cost_scale
from routeiq.routing.features import (
    CHARS_PER_TOKEN,
    TextFeatures,
    matches_keywords,
    text_features,
)
from routeiq.routing.featurizer import Featurizer


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


class RouteInput:
    """What a strategy may look at for one request. The text never leaves the process.

    Feature vectors are computed lazily, once per pipeline: ``embed`` computes the default
    pipeline's (``features_id``), ``featurize`` any other pipeline's (a bundle's own). Only
    some strategies need them; the engine asks for the one telemetry logs.
    """

    def __init__(
        self,
        text: str,
        *,
        requested_model: str = "auto",
        unit_key: str = "",
        domain: str | None = None,
        embed: Callable[[str], NDArray[np.float32]] | None = None,
        featurize: Callable[[Featurizer, str], NDArray[np.float32]] | None = None,
        features_id: str | None = None,
    ) -> None:
        self.text = text
        self.requested_model = requested_model
        self.unit_key = unit_key
        self.domain = domain
        self._embed = embed
        self._featurize = featurize
        self.features_id = features_id
        self._vectors: dict[str, NDArray[np.float32]] = {}
        self._features: TextFeatures | None = None
        self.embedding_ms = 0.0

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
        if featurizer is None or self._featurize is None or featurizer.id == self.features_id:
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
            if self._embed is None:
                raise ConfigError("this route has no embedding function")
            vector = self._embed(self.text)
        else:
            assert featurizer is not None
            assert self._featurize is not None
            vector = self._featurize(featurizer, self.text)
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


def _check_params(kind: str, params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise ConfigError(
            f"strategy {kind}: unknown parameter(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def _seeded_rng(kind: str, params: Mapping[str, Any]) -> _random.Random:
    """The strategy's own RNG, from its optional integer ``seed`` parameter."""
    seed = params.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"strategy {kind}: seed must be an integer, got {seed!r}")
    return _random.Random(seed)  # noqa: S311 - routing randomness, not crypto


class RandomStrategy(Strategy):
    kind = "random"
    capabilities = frozenset({"baseline"})

    def __init__(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        rng: _random.Random | None = None,
    ) -> None:
        super().__init__(name, params)
        _check_params(self.kind, self.params, {"seed"})
        self._rng = rng or _seeded_rng(self.kind, self.params)
        self._lock = threading.Lock()

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        with self._lock:
            pick = self._rng.choice(list(candidates))
        return Choice(pick.name, "uniform random choice", uniform=True)


class CheapestStrategy(Strategy):
    kind = "cheapest"
    capabilities = frozenset({"cost_aware"})

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        tokens = request.features.est_tokens
        costs = {c.name: c.est_cost(tokens) for c in candidates}
        pick = min(candidates, key=lambda c: (costs[c.name], -c.quality_rank, c.name))
        return Choice(
            pick.name,
            f"lowest estimated cost ${costs[pick.name]:.6f}",
            scores={k: -v for k, v in costs.items()},
        )


class StrongestStrategy(Strategy):
    kind = "strongest"

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        pick = max(candidates, key=lambda c: (c.quality_rank, -c.input_price, c.name))
        return Choice(
            pick.name,
            f"highest quality rank {pick.quality_rank}",
            scores={c.name: c.quality_rank for c in candidates},
        )


class BundleHolder:
    """The active learned router, swapped atomically by model sync; readers take a snapshot."""

    def __init__(self) -> None:
        self._bundle: LoadedBundle | None = None
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedBundle | None:
        return self._bundle  # a single reference read is atomic: no lock on the hot path

    @property
    def loaded_at(self) -> float | None:
        return self._loaded_at

    def swap(self, bundle: LoadedBundle | None, *, at: float) -> LoadedBundle | None:
        with self._lock:
            old, self._bundle, self._loaded_at = self._bundle, bundle, at
        return old


def _predict(bundle: LoadedBundle, request: RouteInput) -> dict[str, float]:
    emb = request.embedding(bundle.featurizer)[None, :]
    pred = bundle.router.predict(emb, [request.text])[0]
    return {m: float(v) for m, v in zip(bundle.manifest.models, pred, strict=True)}


class LearnedStrategy(Strategy):
    """The cost-aware policy over every candidate the active router scores:
    ``argmax_j q̂_j − λ · cost_j / scale`` (``costpolicy``), with λ from one of

    * ``target``: ``{"cost_per_1k_usd": X}``, ``{"quality_floor": Q}`` or ``{"lambda": L}``;
      λ is recalibrated every ``recalibrate_every`` requests on a window of live requests'
      predictions and estimated costs (no labels needed), blended with the bundle's
      validation sample until ``MIN_LIVE`` live requests have been seen;
    * ``cost_weight`` (the original form): quality minus ``cost_weight`` × cost in USD.

    Candidates the bundle does not know are not scored; without a bundle, ``fallback`` serves.
    """

    kind = "learned"
    capabilities = frozenset({"learned", "needs_embedding", "cost_aware", "calibrated"})
    MIN_LIVE = 200

    def __init__(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        holder: BundleHolder,
        fallback: Strategy,
    ) -> None:
        super().__init__(name, params)
        _check_params(
            self.kind, self.params, {"cost_weight", "target", "window", "recalibrate_every"}
        )
        self.cost_weight = float(self.params.get("cost_weight", 0.0))
        if self.cost_weight < 0:
            raise ConfigError("strategy learned: cost_weight must be >= 0")
        self.target = (
            Target.parse(self.params["target"]) if self.params.get("target") is not None else None
        )
        if self.target is not None and "cost_weight" in self.params:
            raise ConfigError("strategy learned: give cost_weight or target, not both")
        window = self.params.get("window", 1000)
        every = self.params.get("recalibrate_every", 100)
        for key, value in (("window", window), ("recalibrate_every", every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"strategy learned: {key} must be a positive integer")
        self._every = int(every)
        self._holder = holder
        self._fallback = fallback
        self._lock = threading.Lock()
        self._live: deque[tuple[NDArray[np.float64], float]] = deque(maxlen=int(window))
        self._prices: dict[str, ModelOption] = {}
        self._since = 0
        self._version: str | None = None
        self._lam: float | None = None
        self._scale = 1.0
        self._pending = False

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.target is not None:
            out["calibration"] = {
                "target": self.target.describe(),
                "lambda": self._lam,
                "cost_scale_usd": self._scale,
                "live_requests": len(self._live),
                "router_version": self._version,
            }
        return out

    def calibration(self) -> tuple[float, float] | None:
        """(λ, cost scale) in force, or None before any calibration."""
        with self._lock:
            return None if self._lam is None else (self._lam, self._scale)

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        bundle = self._holder.get()
        known = [c for c in candidates if bundle is not None and c.name in bundle.manifest.models]
        if bundle is None or not known:
            inner = self._fallback.choose(request, candidates)
            why = "no learned router loaded" if bundle is None else "router knows no candidate"
            return Choice(
                inner.model,
                f"{why}; {self._fallback.name}: {inner.reason}",
                inner.scores,
                None,
                inner.uniform,
                inner.probabilities,
            )
        quality = _predict(bundle, request)
        tokens = request.est_tokens
        costs = {c.name: c.est_cost(tokens) for c in known}
        if self.target is None:
            lam_per_usd, how = self.cost_weight, f"cost weight {self.cost_weight:g}/USD"
        else:
            lam, scale = self._observe(bundle, known, quality, tokens)
            lam_per_usd, how = lam / scale, f"λ={lam:.4g} for {self._target_text()}"
        utility = {n: quality[n] - lam_per_usd * costs[n] for n in costs}
        pick = max(known, key=lambda c: (utility[c.name], -costs[c.name], c.name))
        return Choice(
            pick.name,
            f"{bundle.manifest.router_type} router over {len(known)} candidates: expected "
            f"quality {quality[pick.name]:.3f}, est. ${costs[pick.name]:.6f}, {how}",
            scores={c.name: utility.get(c.name) for c in candidates},
            router_version=bundle.version,
        )

    def _target_text(self) -> str:
        assert self.target is not None
        return f"{self.target.kind}={self.target.value:g}"

    def _observe(
        self,
        bundle: LoadedBundle,
        known: Sequence[ModelOption],
        quality: Mapping[str, float],
        tokens: int,
    ) -> tuple[float, float]:
        """Record this request for calibration; return (λ, scale) to route it with."""
        models = bundle.manifest.models
        row = np.array([quality.get(m, np.nan) for m in models], dtype=np.float64)
        with self._lock:
            if bundle.version != self._version:
                # Predictions of another router are not comparable: start over.
                self._live.clear()
                self._version, self._lam, self._since = bundle.version, None, 0
            self._prices.update({c.name: c for c in known})
            self._live.append((row, float(tokens)))
            self._since += 1
            first = self._lam is None
            due = not first and self._since >= self._every and not self._pending
            if due:
                self._pending = True
        if first:
            self.recalibrate(bundle)  # once per router, from its validation sample
        elif due:
            # Off the request path: this request and the next are routed with the λ in force.
            _calibrator().submit(self._recalibrate_later, bundle)
        with self._lock:
            assert self._lam is not None
            return self._lam, self._scale

    def _recalibrate_later(self, bundle: LoadedBundle) -> None:
        try:
            self.recalibrate(bundle)
        except Exception:
            logging.getLogger(__name__).exception("recalibrating %s failed", self.name)
        finally:
            with self._lock:
                self._pending = False

    def recalibrate(self, bundle: LoadedBundle) -> None:
        """Solve for λ on the live window blended with the bundle's validation sample."""
        assert self.target is not None
        models = bundle.manifest.models
        with self._lock:
            live = list(self._live)
            prices = dict(self._prices)
        names = [m for m in models if m in prices]
        cols = [models.index(m) for m in names]
        rows, tokens, weights = [], [], []
        for q, t in live:
            rows.append(q[cols])
            tokens.append(t)
            weights.append(1.0)
        sample = bundle.manifest.calibration.get("policy_sample") or {}
        prior_q = sample.get("quality") or []
        if prior_q and len(live) < self.MIN_LIVE:
            prior = np.asarray(prior_q, dtype=np.float64)[:, cols]
            prior_t = sample.get("tokens") or [float(np.median(tokens or [64.0]))] * len(prior)
            share = (self.MIN_LIVE - len(live)) / len(prior)
            rows.extend(prior)
            tokens.extend(float(t) for t in prior_t)
            weights.extend([share] * len(prior))
        predicted = np.vstack(rows) if rows else np.zeros((0, len(names)))
        # ModelOption.est_cost, vectorised: prompt tokens at the input price plus the expected
        # answer at the output price.
        counts = np.asarray(tokens, dtype=np.float64).astype(np.int64).astype(np.float64)
        inp = np.array([prices[m].input_price for m in names])
        out = np.array([prices[m].expected_output_tokens * prices[m].output_price for m in names])
        costs: NDArray[np.float64] = (counts[:, None] * inp[None, :] + out[None, :]) / 1e6
        usable = np.isfinite(predicted).all(axis=1)
        predicted, costs, w = predicted[usable], costs[usable], np.asarray(weights)[usable]
        scale = float(bundle.manifest.calibration.get("cost_scale_usd") or 0.0)
        if scale <= 0:
            scale = cost_scale(costs)
        lam = calibrate(predicted, costs, self.target, scale=scale, weights=w)
        with self._lock:
            if bundle.version == self._version:
                self._lam, self._scale, self._since = lam, scale, 0


class ThresholdStrategy(Strategy):
    """RouteLLM-style strong/weak routing on a win score with a calibrated threshold.

    Score = expected quality of ``strong`` minus that of ``weak`` under the active learned
    router (or, without one, a text heuristic: maths, code and length raise it). The threshold
    sends ``target_strong_pct`` of traffic to the strong model. It is read off a reference
    distribution of scores: the bundle's validation quantiles at first, blended into a window
    of the scores live traffic actually produced, which alone decides after ``MIN_LIVE``
    scores (a validation set rarely has exactly the production mix).

    Scores exactly at the threshold are split at random in the proportion that keeps the
    target (a router with few distinct scores, say kNN with uniform votes, would otherwise send
    every tie one way); such a choice reports its probabilities, which the engine logs as
    propensities.
    """

    kind = "threshold"
    capabilities = frozenset({"learned", "needs_embedding", "calibrated"})

    # Scores after which the live window alone calibrates; before that the bundle's quantiles
    # weigh in proportion to the scores still missing.
    MIN_LIVE = 200
    # Without a bundle to start from, the live window calibrates once it has this many.
    MIN_LIVE_ALONE = 20
    # Scores are compared at this precision: the "same" score computed twice may differ in
    # the last bits (summation order), and must still count as a tie.
    DECIMALS = 9

    def __init__(
        self, name: str, params: Mapping[str, Any] | None = None, *, holder: BundleHolder
    ) -> None:
        super().__init__(name, params)
        _check_params(
            self.kind,
            self.params,
            {"strong", "weak", "target_strong_pct", "threshold", "window", "scorer", "seed"},
        )
        # "auto": the learned router when one is active, else the heuristic; "heuristic":
        # always the text heuristic (a baseline to compare a learned router against).
        self.scorer = str(self.params.get("scorer", "auto"))
        if self.scorer not in {"auto", "heuristic"}:
            raise ConfigError("strategy threshold: scorer must be auto or heuristic")
        for key in ("strong", "weak"):
            if not self.params.get(key):
                raise ConfigError(f"strategy threshold: parameter {key!r} is required")
        self.strong = str(self.params["strong"])
        self.weak = str(self.params["weak"])
        self.target = float(self.params.get("target_strong_pct", 50.0))
        if not 0.0 <= self.target <= 100.0:
            raise ConfigError("strategy threshold: target_strong_pct must be in [0, 100]")
        self.fixed = self.params.get("threshold")
        self._holder = holder
        self._recent: deque[float] = deque(maxlen=int(self.params.get("window", 2000)))
        self._scored_by: str | None = None
        self._lock = threading.Lock()
        self._rng = _seeded_rng(self.kind, self.params)

    @staticmethod
    def heuristic_score(features: TextFeatures) -> float:
        """A prior win score without a learned router: harder-looking queries score higher."""
        score = 0.15 * float(features.has_math) + 0.15 * float(features.has_code)
        score += min(features.chars, 4000) / 4000 * 0.2 + min(features.digits, 40) / 40 * 0.1
        return score

    def calibration(self, bundle: LoadedBundle | None) -> tuple[float, float] | None:
        """(threshold, probability of the strong model for a score exactly at it), or None
        while there is nothing to calibrate on.

        The reference distribution is a weighted sample: each live score weighs 1 and the
        bundle's validation quantiles share the weight of the live scores still missing
        before ``MIN_LIVE``. The threshold is the highest score whose upper tail (itself
        included) reaches the target share; the share of ties that keeps the target exact
        goes to the strong model.
        """
        if self.fixed is not None:
            return float(self.fixed), 1.0
        with self._lock:
            live = np.fromiter(self._recent, float)
        prior = None
        if bundle is not None and live.size < self.MIN_LIVE:
            quantiles = bundle.manifest.calibration.get("win_score_quantiles")
            if quantiles:
                prior = np.round(np.asarray(quantiles, dtype=float), self.DECIMALS)
        if prior is None:
            if live.size < self.MIN_LIVE_ALONE:
                return None
            values, weights = live, np.ones(live.size)
        else:
            prior_weight = (self.MIN_LIVE - live.size) / prior.size
            values = np.concatenate([live, prior])
            weights = np.concatenate([np.ones(live.size), np.full(prior.size, prior_weight)])
        distinct, inverse = np.unique(values, return_inverse=True)
        mass = np.bincount(inverse, weights=weights)[::-1]  # per distinct score, high first
        wanted = self.target / 100.0 * float(mass.sum())
        above = np.concatenate([[0.0], np.cumsum(mass)[:-1]])  # weight strictly higher
        i = int(np.searchsorted(above + mass, wanted - 1e-12))
        i = min(i, distinct.size - 1)
        tie = float(np.clip((wanted - above[i]) / mass[i], 0.0, 1.0))
        return float(distinct[::-1][i]), tie

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        names = {c.name for c in candidates}
        bundle = self._holder.get()
        usable = (
            self.scorer == "auto"
            and bundle is not None
            and {self.strong, self.weak} <= set(bundle.manifest.models)
        )
        if usable and bundle is not None:
            quality = _predict(bundle, request)
            score = quality[self.strong] - quality[self.weak]
            source, version = f"{bundle.manifest.router_type} router", bundle.version
        else:
            score = self.heuristic_score(request.features)
            source, version = "text heuristic", None
        score = round(score, self.DECIMALS)
        with self._lock:
            # Scores of another scorer (a new bundle, or the heuristic) are not comparable.
            if version != self._scored_by:
                self._recent.clear()
                self._scored_by = version
            self._recent.append(score)
        calibrated = self.calibration(bundle if usable else None)
        p_strong = 1.0
        if calibrated is not None:
            cut, tie = calibrated
            p_strong = 1.0 if score > cut else tie if score == cut else 0.0
        randomised = 0.0 < p_strong < 1.0
        if randomised:
            with self._lock:
                strong_wanted = self._rng.random() < p_strong
        else:
            strong_wanted = p_strong == 1.0
        pick = self.strong if strong_wanted else self.weak
        probabilities = {self.strong: p_strong, self.weak: 1.0 - p_strong} if randomised else None
        if pick not in names:  # the chosen side is unavailable: serve the other
            pick = self.weak if pick == self.strong else self.strong
            probabilities = None
            if pick not in names:
                pick = candidates[0].name
        if calibrated is None:
            cut_text = "uncalibrated (warming up)"
        else:
            cut_text = f"{calibrated[0]:.3f}"
            if randomised:
                cut_text += f" (a tie: strong with p={p_strong:.2f})"
        return Choice(
            pick,
            f"{source}: win score {score:.3f} vs threshold {cut_text} "
            f"(target {self.target:.0f}% strong)",
            scores={
                c.name: (
                    score if c.name == self.strong else -score if c.name == self.weak else None
                )
                for c in candidates
            },
            router_version=version,
            probabilities=probabilities,
        )


@dataclass(frozen=True)
class PolicyRule:
    name: str
    model: str
    keywords: tuple[str, ...] = ()
    min_chars: int | None = None
    max_chars: int | None = None
    code: bool | None = None
    math: bool | None = None

    def matches(self, text: str, features: TextFeatures) -> bool:
        if self.keywords and not matches_keywords(text, self.keywords):
            return False
        if self.min_chars is not None and features.chars < self.min_chars:
            return False
        if self.max_chars is not None and features.chars > self.max_chars:
            return False
        if self.code is not None and features.has_code != self.code:
            return False
        return not (self.math is not None and features.has_math != self.math)


class PolicyStrategy(Strategy):
    """Flexible policy mapping: domain overrides, ordered rules, a default, a cost budget.

    Params: ``default`` (model), ``rules`` (list of {name, model, keywords, min_chars,
    max_chars, code, math}; the first match wins), ``domains`` ({domain: model}),
    ``budget_usd`` (per request; a pick estimated above it is downgraded to the strongest
    model within budget, else the cheapest).
    """

    kind = "policy"
    capabilities = frozenset({"rules", "cost_aware"})

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, params)
        _check_params(self.kind, self.params, {"default", "rules", "domains", "budget_usd"})
        if not self.params.get("default"):
            raise ConfigError("strategy policy: parameter 'default' (a model) is required")
        self.default = str(self.params["default"])
        try:
            self.rules = [
                PolicyRule(
                    name=str(r.get("name", f"rule-{i}")),
                    model=str(r["model"]),
                    keywords=tuple(r.get("keywords", ())),
                    min_chars=r.get("min_chars"),
                    max_chars=r.get("max_chars"),
                    code=r.get("code"),
                    math=r.get("math"),
                )
                for i, r in enumerate(self.params.get("rules", []))
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"strategy policy: a rule is malformed ({exc!r}); each needs "
                "'model' and optional keywords/min_chars/max_chars/code/math"
            ) from exc
        self.domains = {str(k): str(v) for k, v in dict(self.params.get("domains", {})).items()}
        budget = self.params.get("budget_usd")
        self.budget = None if budget is None else float(budget)

    def models(self) -> set[str]:
        return {self.default, *(r.model for r in self.rules), *self.domains.values()}

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        by_name = {c.name: c for c in candidates}
        target, reason = self.default, "default model"
        if request.domain and request.domain in self.domains:
            target, reason = self.domains[request.domain], f"domain {request.domain!r}"
        else:
            for rule in self.rules:
                if rule.matches(request.text, request.features):
                    target, reason = rule.model, f"rule {rule.name!r}"
                    break
        if target not in by_name:
            fallback = max(candidates, key=lambda c: (c.quality_rank, c.name))
            target, reason = fallback.name, f"{reason} wanted {target!r} (unavailable)"
        tokens = request.features.est_tokens
        if self.budget is not None and by_name[target].est_cost(tokens) > self.budget:
            within = [c for c in candidates if c.est_cost(tokens) <= self.budget]
            down = (
                max(within, key=lambda c: (c.quality_rank, c.name))
                if within
                else min(candidates, key=lambda c: c.est_cost(tokens))
            )
            reason += (
                f"; estimated ${by_name[target].est_cost(tokens):.4f} over budget "
                f"${self.budget:.4f}, downgraded"
            )
            target = down.name
        return Choice(target, reason)


StrategyFactory = Callable[[str, Mapping[str, Any]], Strategy]


@functools.cache
def _calibrator() -> ThreadPoolExecutor:
    """One worker thread shared by every strategy's recalibrations (a few ms each)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="routeiq-calibrate")
