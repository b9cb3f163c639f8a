"""The bundle manifest: its file names, the probe queries and the ``Manifest`` record."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from routeiq.routing.bundle.errors import BundleError
from routeiq.routing.featurizer import FeatureError, FeatureSpec

__all__ = [
    "FORMAT",
    "MANIFEST",
    "PROBE_QUERIES",
    "SIGNATURE",
    "Candidate",
    "Manifest",
    "Probe",
    "feature_spec",
]

FORMAT = "routeiq.bundle.v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"

# Synthetic probe queries covering the shapes of traffic (math, code, chat, long, short).
PROBE_QUERIES: tuple[str, ...] = (
    "What is 17 times 23?",
    "A train leaves at 3 pm travelling 60 miles per hour. How far has it gone by 5:30 pm?",
    "Write a Python function that reverses a linked list.",
    "Explain the difference between TCP and UDP.",
    "Compose a short poem about autumn leaves.",
    "hi",
    "Summarise the causes of the French Revolution in three bullet points, citing the "
    "economic, social and political factors, and explain which mattered most and why.",
    "Translate 'good morning' into French and Spanish.",
)


@dataclass(frozen=True)
class Candidate:
    """A model the router scores, with the prices used to compute cost."""

    name: str
    input_price: float = 0.0  # USD per million tokens
    output_price: float = 0.0


@dataclass(frozen=True)
class Probe:
    text: str
    expected: list[float]


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    router_type: str
    candidates: list[Candidate]
    files: dict[str, dict[str, Any]]
    probes: list[Probe]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    feature_spec: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    format: str = FORMAT
    probe_tolerance: float = 1e-3

    @functools.cached_property
    def models(self) -> tuple[str, ...]:
        # Read on every routed request: computed once (a frozen dataclass's cached property
        # is stored in the instance dict, which asdict/to_bytes ignore).
        return tuple(c.name for c in self.candidates)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise BundleError(f"unknown bundle format {raw.get('format')!r}, want {FORMAT}")
            raw["candidates"] = [Candidate(**c) for c in raw["candidates"]]
            raw["probes"] = [Probe(**p) for p in raw["probes"]]
            return cls(**raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise BundleError(f"manifest.json is malformed: {exc}") from exc


def feature_spec(manifest: Manifest) -> FeatureSpec:
    """The bundle's feature pipeline spec (a pre-pipeline manifest reads as MiniLM)."""
    raw = {k: v for k, v in manifest.feature_spec.items() if k != "needs_text"}
    try:
        return FeatureSpec.from_dict(raw)
    except FeatureError as exc:
        raise BundleError(f"feature spec: {exc}") from exc
