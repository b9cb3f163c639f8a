"""Simulated provider behaviour: latency and deterministic injected errors.

An injected error is a function of (model, prompt): the pair's SHA-256, read as a number in
[0, 1), fails when below the model's error rate. A failing pair fails on every retry, a
different model for the same prompt usually succeeds, so gateway fallbacks are testable and
reproducible. Latency jitter is random (it models network noise, not content).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from routeiq_upstream.errors import (
    InjectedRateLimitError,
    InjectedUnavailableError,
    UpstreamError,
)


def failure_draw(model: str, key: str) -> float:
    """A number in [0, 1) fixed by (model, normalised prompt)."""
    digest = hashlib.sha256(f"{model}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class FaultPolicy:
    """Latency per model and the injected-error rates (models by canonical name)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    model_latency_ms: Mapping[str, float] = field(default_factory=dict)
    error_rate: Mapping[str, float] = field(default_factory=dict)
    error_status: int = 503
    chunk_delay_ms: float = 0.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay_s(self, model: str) -> float:
        """Seconds to wait before answering ``model``."""
        base = self.model_latency_ms.get(model, self.latency_ms)
        if self.jitter_ms:
            base += self.rng.uniform(0.0, self.jitter_ms)
        return base / 1000.0

    @property
    def chunk_delay_s(self) -> float:
        return self.chunk_delay_ms / 1000.0

    def injected_error(self, model: str, key: str) -> UpstreamError | None:
        """The error this (model, prompt) answers with, or None."""
        rate = self.error_rate.get(model, 0.0)
        if rate <= 0.0 or failure_draw(model, key) >= rate:
            return None
        if self.error_status == 429:
            return InjectedRateLimitError(
                f"Rate limit reached for {model} (injected by the RouteIQ offline upstream: "
                f"error rate {rate:g} for this model)."
            )
        return InjectedUnavailableError(
            f"{model} is temporarily unavailable (injected by the RouteIQ offline upstream: "
            f"error rate {rate:g} for this model)."
        )
