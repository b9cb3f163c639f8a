"""The cost-aware learned strategy: the active router's expected quality per candidate minus
λ times its estimated cost, λ calibrated on live traffic (``costpolicy``)."""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError
from routeiq.routing.bundle import LoadedBundle
from routeiq.routing.costpolicy import Target, calibrate, cost_scale
from routeiq.routing.routers.base import RouterUnavailable
from routeiq.routing.strategies.base import Choice, ModelOption, RouteInput, Strategy
from routeiq.routing.strategies.holder import BundleHolder, predict_quality

__all__ = ["LearnedStrategy"]


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
        self.check_params({"cost_weight", "target", "window", "recalibrate_every"})
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
            why = "no learned router loaded" if bundle is None else "router knows no candidate"
            return self._fall_back(request, candidates, why)
        try:
            quality = predict_quality(bundle, request)
        except RouterUnavailable as exc:  # an out-of-process router over its latency budget
            return self._fall_back(request, candidates, f"router unavailable ({exc})")
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

    def _fall_back(
        self, request: RouteInput, candidates: Sequence[ModelOption], why: str
    ) -> Choice:
        inner = self._fallback.choose(request, candidates)
        return Choice(
            inner.model,
            f"{why}; {self._fallback.name}: {inner.reason}",
            inner.scores,
            None,
            inner.uniform,
            inner.probabilities,
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


@functools.cache
def _calibrator() -> ThreadPoolExecutor:
    """One worker thread shared by every strategy's recalibrations (a few ms each)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="routeiq-calibrate")
