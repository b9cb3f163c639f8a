"""RouteLLM-style strong/weak routing on a win score with a calibrated threshold."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from routeiq.errors import ConfigError
from routeiq.routing.bundle import LoadedBundle
from routeiq.routing.features import TextFeatures
from routeiq.routing.routers.base import RouterUnavailable
from routeiq.routing.strategies.base import Choice, ModelOption, RouteInput, Strategy
from routeiq.routing.strategies.holder import BundleHolder, predict_quality

__all__ = ["RouteLLMThreshold", "ThresholdStrategy", "strong_win_rate"]


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
        self.check_params(
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
        self._rng = self.seeded_rng()

    @classmethod
    def from_config(cls, name: str, params: Mapping[str, Any], *, holder: BundleHolder) -> Self:
        return cls(name, params, holder=holder)

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
        quality = None
        if usable and bundle is not None:
            try:
                quality = predict_quality(bundle, request)
            except RouterUnavailable:  # over its latency budget: the heuristic decides
                usable = False
        if quality is not None and bundle is not None:
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


def strong_win_rate(quality: Mapping[str, float], strong: str, weak: str) -> float:
    """RouteLLM's routing quantity from a router's expected qualities: the probability that
    the strong model's answer beats the weak one's, a tie counting half.

    With independent outcomes of success probabilities q_s and q_w that is
    q_s(1 − q_w) + ½[q_s·q_w + (1 − q_s)(1 − q_w)] = (1 + q_s − q_w) / 2, in [0, 1].
    """
    q_s = min(max(quality[strong], 0.0), 1.0)
    q_w = min(max(quality[weak], 0.0), 1.0)
    return 0.5 * (1.0 + q_s - q_w)


class RouteLLMThreshold(Strategy):
    """RouteLLM's rule for one request: the strong model when its win rate (``strong_win_rate``
    under the active learned router) is at least ``threshold``, else the weak one.

    The threshold is the client's (``model="router-mf-0.116"``), not calibrated here: as in
    RouteLLM, a higher threshold means fewer strong calls, and the share a given threshold
    yields depends on the router and the traffic.
    """

    kind = "routellm"
    capabilities = frozenset({"learned", "needs_embedding"})

    def __init__(
        self, name: str, params: Mapping[str, Any] | None = None, *, holder: BundleHolder
    ) -> None:
        super().__init__(name, params)
        self.check_params({"strong", "weak", "threshold"})
        for key in ("strong", "weak"):
            if not self.params.get(key):
                raise ConfigError(f"strategy routellm: parameter {key!r} is required")
        self.strong = str(self.params["strong"])
        self.weak = str(self.params["weak"])
        threshold = self.params.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError(f"strategy routellm: threshold must be a number, got {threshold!r}")
        self.threshold = float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"strategy routellm: threshold must be in [0, 1], got {threshold}")
        self._holder = holder

    @classmethod
    def from_config(cls, name: str, params: Mapping[str, Any], *, holder: BundleHolder) -> Self:
        return cls(name, params, holder=holder)

    def choose(self, request: RouteInput, candidates: Sequence[ModelOption]) -> Choice:
        bundle = self._holder.get()
        if bundle is None or not {self.strong, self.weak} <= set(bundle.manifest.models):
            raise ConfigError(
                f"strategy routellm: the active router does not score {self.strong} and {self.weak}"
            )
        win = strong_win_rate(predict_quality(bundle, request), self.strong, self.weak)
        names = {c.name for c in candidates}
        pick = self.strong if win >= self.threshold else self.weak
        if pick not in names:  # the chosen side is unavailable: serve the other
            pick = self.weak if pick == self.strong else self.strong
        relation = ">=" if win >= self.threshold else "<"
        return Choice(
            pick,
            f"{bundle.manifest.router_type} router: strong win rate {win:.4f} {relation} "
            f"threshold {self.threshold:g}",
            scores={
                c.name: win if c.name == self.strong else 1.0 - win if c.name == self.weak else None
                for c in candidates
            },
            router_version=bundle.version,
        )
