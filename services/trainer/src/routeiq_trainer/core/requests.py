"""Retrain requests: the record on the topic, the version name it gets, and its options.

Version names are ``v<UTC yyyymmddThhmmssSSS of requested_at>-<8 hex of sha256(request_id)>``,
for example ``v20261123T175709123-1a2b3c4d``. They are

* stable for a request: computed only from the request's id and timestamp, so a crash and a
  redelivery name the same version (and the same ``models/<name>/<version>/`` prefix);
* sortable: fixed width, so lexicographic order is request-time order;
* unique: two requests differ in id, hence in the hash suffix, even at the same millisecond.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from routeiq.routing.routers import ROUTER_TYPES, RouterError

from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.errors import RequestError

# Names become S3 key segments and MLflow names: no separators, no traversal.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
REASONS = ("THRESHOLD", "TIMER", "MANUAL", "BACKFILL", "UNKNOWN")


def version_name(request_id: str, requested_at_ms: int) -> str:
    """The bundle version of a request (see the module docstring)."""
    when = datetime.fromtimestamp(requested_at_ms / 1000, tz=UTC)
    stamp = when.strftime("%Y%m%dT%H%M%S") + f"{requested_at_ms % 1000:03d}"
    return f"v{stamp}-{hashlib.sha256(request_id.encode()).hexdigest()[:8]}"


def check_name(name: str, what: str = "model name") -> str:
    """``name`` if it is safe as an S3 key segment and an MLflow name, else ``RequestError``."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise RequestError(
            f"{what} {name!r} is not allowed: 1-100 of A-Z a-z 0-9 . _ -, starting with a "
            "letter or digit"
        )
    return name


def _millis(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


@dataclass(frozen=True)
class TrainRequest:
    """A ``RetrainRequest`` as the trainer uses it."""

    request_id: str
    model_name: str
    requested_by: str
    requested_at_ms: int
    router_types: tuple[str, ...] = ()
    reason: str = "UNKNOWN"
    shard_manifests: tuple[str, ...] = ()
    example_count: int = 0
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.request_id.strip():
            raise RequestError("request_id is empty")
        check_name(self.model_name)

    @property
    def version(self) -> str:
        return version_name(self.request_id, self.requested_at_ms)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrainRequest:
        """From a decoded ``RetrainRequest`` (timestamps as datetimes or epoch millis)."""
        requested_at = _millis(record["requested_at"])
        assert requested_at is not None
        return cls(
            request_id=str(record["request_id"]),
            model_name=str(record["model_name"]),
            requested_by=str(record["requested_by"]),
            requested_at_ms=requested_at,
            router_types=tuple(record.get("router_types") or ()),
            reason=str(record.get("reason") or "UNKNOWN"),
            shard_manifests=tuple(record.get("shard_manifests") or ()),
            example_count=int(record.get("example_count") or 0),
            window_start_ms=_millis(record.get("window_start")),
            window_end_ms=_millis(record.get("window_end")),
            params={str(k): str(v) for k, v in (record.get("params") or {}).items()},
        )

    def to_record(self) -> dict[str, Any]:
        """The Avro ``RetrainRequest`` record."""
        return {
            "request_id": self.request_id,
            "model_name": self.model_name,
            "router_types": list(self.router_types),
            "reason": self.reason if self.reason in REASONS else "UNKNOWN",
            "requested_by": self.requested_by,
            "requested_at": self.requested_at_ms,
            "shard_manifests": list(self.shard_manifests),
            "example_count": self.example_count,
            "window_start": self.window_start_ms,
            "window_end": self.window_end_ms,
            "params": dict(self.params),
        }


# Request-level keys of ``params``; every other key is ``<router type>.<parameter>``.
TRAINER_PARAMS = (
    "dataset",
    # Texts for shard rows, by query key (routeiq.routing.querykey): a dataset name or file
    # whose prompts the routers that read text train on (the shards' labels stay the labels).
    "texts",
    "validation_fraction",
    "seed",
    "propensity_correction",
    "strong",
    "weak",
    "cost_weight",
)


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides how one request trains, resolved from request and settings."""

    router_types: tuple[str, ...]
    router_params: dict[str, dict[str, Any]]
    dataset: str | None
    validation_fraction: float
    seed: int
    propensity_correction: str
    strong: str | None
    weak: str | None
    cost_weight: float
    texts: str | None = None

    def as_params(self) -> dict[str, Any]:
        """Flat, loggable form (MLflow params)."""
        out: dict[str, Any] = {
            "router_types": ",".join(self.router_types),
            "source": f"dataset:{self.dataset}" if self.dataset else "shards",
            **({"texts": self.texts} if self.texts else {}),
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
            "propensity_correction": self.propensity_correction,
            "cost_weight": self.cost_weight,
        }
        for kind, params in self.router_params.items():
            for key, value in params.items():
                out[f"{kind}.{key}"] = value
        return out


def _value(text: str) -> Any:
    """``"5"`` → 5, ``"0.1"`` → 0.1, ``"true"`` → True; anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def resolve_options(request: TrainRequest, settings: TrainerSettings) -> TrainOptions:
    """Merge a request's router types and ``params`` over the settings; refuse what cannot work.

    Raises ``RequestError`` naming the problem: an unknown router type or parameter, a value
    out of range, parameters for a type not being trained, or the BERT router on shards.
    """
    types = tuple(dict.fromkeys(request.router_types)) or settings.router_types
    unknown = sorted(set(types) - set(ROUTER_TYPES))
    if unknown:
        raise RequestError(f"unknown router type(s) {unknown}; known: {sorted(ROUTER_TYPES)}")
    top: dict[str, Any] = {}
    router_params: dict[str, dict[str, Any]] = {t: {} for t in types}
    for key, raw in sorted(request.params.items()):
        if key in TRAINER_PARAMS:
            top[key] = raw if key in {"dataset", "texts", "strong", "weak"} else _value(raw)
            continue
        kind, dot, name = key.partition(".")
        if not dot or kind not in ROUTER_TYPES:
            raise RequestError(
                f"unknown parameter {key!r}: use one of {list(TRAINER_PARAMS)} or "
                "<router type>.<parameter> (e.g. knn.k)"
            )
        if kind not in types:
            raise RequestError(f"parameter {key!r} is for {kind}, which is not being trained")
        try:
            allowed = ROUTER_TYPES[kind].default_params
        except RouterError as exc:  # a plugin that is declared but broken
            raise RequestError(str(exc)) from exc
        if name not in allowed:
            raise RequestError(f"{kind} has no parameter {name!r}; known: {sorted(allowed)}")
        router_params[kind][name] = _value(raw)
    dataset, texts = top.get("dataset") or None, top.get("texts") or None
    if dataset and texts:
        raise RequestError("texts joins shard rows to their prompts; a dataset has its own")
    try:
        reading = [t for t in types if ROUTER_TYPES.lookup(t).needs_text]
    except RouterError as exc:  # a plugin that is declared but broken
        raise RequestError(str(exc)) from exc
    if reading and not (dataset or texts):
        raise RequestError(
            f"the {', '.join(reading)} router reads query text, which training shards never "
            "carry: train it from a dataset file (params dataset=gsm8k|mt_bench|"
            "llmrouter-train|<file.csv>) or join the shards to your prompts by query key "
            "(params texts=<dataset or file>, with ROUTEIQ_TRAINER_QUERY_KEY set)"
        )
    try:
        fraction = float(top.get("validation_fraction", settings.validation_fraction))
        seed = int(top.get("seed", settings.seed))
        cost_weight = float(top.get("cost_weight", settings.cost_weight))
    except (TypeError, ValueError) as exc:
        raise RequestError(f"bad numeric parameter: {exc}") from exc
    if not 0.0 < fraction < 1.0:
        raise RequestError(f"validation_fraction must be in (0, 1), got {fraction}")
    if cost_weight < 0:
        raise RequestError(f"cost_weight must be >= 0, got {cost_weight}")
    correction = str(top.get("propensity_correction", settings.propensity_correction))
    if correction not in {"ipw", "dr", "none"}:
        raise RequestError(f"propensity_correction must be ipw, dr or none, got {correction!r}")
    strong = top.get("strong", settings.strong_model)
    weak = top.get("weak", settings.weak_model)
    if (strong is None) != (weak is None) or (strong is not None and strong == weak):
        raise RequestError(f"strong and weak must both be set and differ, got {strong}/{weak}")
    return TrainOptions(
        router_types=types,
        router_params=router_params,
        dataset=dataset,
        validation_fraction=fraction,
        seed=seed,
        propensity_correction=correction,
        strong=strong,
        weak=weak,
        cost_weight=cost_weight,
        texts=texts,
    )


def parse_kv(pairs: Sequence[str]) -> dict[str, str]:
    """``["knn.k=10", "seed=3"]`` → ``{"knn.k": "10", "seed": "3"}`` (for the CLI and MLproject)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise RequestError(f"expected key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
