"""Decoded Avro records → the facts labelling keeps, with the rules a record must pass.

Shared by the labeler (live, from Kafka) and the trainer's ``prepare_data`` (past traffic,
from Jaeger), so a decision is validated and labelled the same way on both paths.

A record that decodes but breaks a rule the join or the shard contract depends on (wrong key,
score outside [0, 1], embedding of the wrong size, a timestamp far in the future) raises
``InvalidRecordError``; the labeler dead-letters it with the message as the reason.

Facts are stored in Faust tables as JSON, so ``to_state``/``from_state`` use short keys and
keep the embedding as base64 float32 (a quarter of the JSON text size of the floats).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from routeiq.errors import InvalidRecordError
from routeiq.routing.embedding import MODEL_NAME as MINILM_NAME
from routeiq.routing.featurizer import MAX_DIMENSION, dimension_of
from routeiq.routing.oracle import GRADES, POLICIES

_QUERY_KEY = re.compile(r"[0-9a-f]{64}")


def _ms(value: Any, what: str) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidRecordError(f"{what} is not a timestamp: {value!r}")


def _finite(value: Any, what: str, *, low: float | None = None, high: float | None = None) -> Any:
    """``value`` if it is None or a finite number within [low, high]; else invalid."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRecordError(f"{what} is not finite: {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidRecordError(f"{what}={number} is outside [{low}, {high}]")
    return number


def _key_matches(key: bytes | None, expected: str, what: str) -> None:
    # Decisions and feedback are co-partitioned by this key; a record keyed otherwise sits in
    # a partition where its partner never arrives.
    if key is None:
        raise InvalidRecordError(f"record has no key; expected the {what} {expected!r}")
    if key != expected.encode():
        shown = key.decode("utf-8", errors="replace")
        raise InvalidRecordError(f"key {shown!r} is not the {what} {expected!r}")


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """What a shard row needs from one ``RouterDecision``."""

    decision_id: str
    event_time_ms: int
    selected_model: str
    candidates: tuple[str, ...]
    propensities: tuple[float | None, ...]
    exploration: bool
    status: str
    latency_ms: float | None
    upstream_latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    query_length: int | None
    requested_model: str | None
    strategy: str | None
    strategy_version: str | None
    router_version: str | None
    ab_arm: str | None
    domain: str | None
    embedding_model: str | None
    embedding: bytes | None  # float32, little-endian (the pipeline's length)
    query_key: str | None = None  # routeiq.routing.querykey (64 hex), when the gateway has a key

    @property
    def propensity(self) -> float | None:
        """The served model's selection probability as logged by the gateway."""
        for name, p in zip(self.candidates, self.propensities, strict=True):
            if name == self.selected_model:
                return p
        return None

    def embedding_list(self) -> list[float] | None:
        if self.embedding is None:
            return None
        return np.frombuffer(self.embedding, dtype="<f4").tolist()  # type: ignore[no-any-return]

    def to_state(self) -> dict[str, Any]:
        """JSON-safe form kept in the decisions table."""
        return {
            "id": self.decision_id,
            "ts": self.event_time_ms,
            "sel": self.selected_model,
            "cand": list(self.candidates),
            "prop": list(self.propensities),
            "expl": self.exploration,
            "st": self.status,
            "lat": self.latency_ms,
            "ulat": self.upstream_latency_ms,
            "tin": self.input_tokens,
            "tout": self.output_tokens,
            "cost": self.cost_usd,
            "qlen": self.query_length,
            "req": self.requested_model,
            "strat": self.strategy,
            "sver": self.strategy_version,
            "rver": self.router_version,
            "arm": self.ab_arm,
            "dom": self.domain,
            "emod": self.embedding_model,
            "emb": None if self.embedding is None else base64.b64encode(self.embedding).decode(),
            "qk": self.query_key,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DecisionFacts:
        emb = state.get("emb")
        return cls(
            decision_id=state["id"],
            event_time_ms=int(state["ts"]),
            selected_model=state["sel"],
            candidates=tuple(state["cand"]),
            propensities=tuple(state["prop"]),
            exploration=bool(state["expl"]),
            status=state["st"],
            latency_ms=state["lat"],
            upstream_latency_ms=state["ulat"],
            input_tokens=state["tin"],
            output_tokens=state["tout"],
            cost_usd=state["cost"],
            query_length=state["qlen"],
            requested_model=state["req"],
            strategy=state["strat"],
            strategy_version=state["sver"],
            router_version=state["rver"],
            ab_arm=state["arm"],
            domain=state["dom"],
            embedding_model=state["emod"],
            embedding=None if emb is None else base64.b64decode(emb),
            query_key=state.get("qk"),  # absent from state written before query keys
        )


def decision_facts(
    record: Mapping[str, Any], *, key: bytes | None, now_ms: int, max_future_skew_ms: int
) -> DecisionFacts:
    """Validate a decoded ``RouterDecision`` and keep what labelling needs."""
    decision_id = record["event_id"]
    if not decision_id:
        raise InvalidRecordError("event_id is empty")
    _key_matches(key, decision_id, "decision id")
    ts = _ms(record["timestamp"], "timestamp")
    if ts < 0:
        raise InvalidRecordError(f"timestamp {ts} is before the epoch")
    if ts > now_ms + max_future_skew_ms:
        raise InvalidRecordError(
            f"timestamp is {(ts - now_ms) / 1000:.0f}s in the future (allowed "
            f"{max_future_skew_ms / 1000:.0f}s); it would close every open window"
        )
    selected = record["selected_deployment"]
    if not selected:
        raise InvalidRecordError("selected_deployment is empty")
    candidates = record["candidate_deployments"]
    names = tuple(c["model_name"] for c in candidates)
    props = tuple(
        _finite(c.get("propensity"), f"propensity of {c['model_name']}", low=0.0, high=1.0)
        for c in candidates
    )
    embedding = record.get("query_embedding")
    packed: bytes | None = None
    if embedding is not None:
        # Without a name, the vector is what every gateway logged before pipelines had ids.
        model = record.get("embedding_model") or MINILM_NAME
        expected = dimension_of(model)
        if expected is not None and len(embedding) != expected:
            raise InvalidRecordError(
                f"query_embedding has {len(embedding)} values; {model} has {expected}"
            )
        if not 0 < len(embedding) <= MAX_DIMENSION:
            raise InvalidRecordError(
                f"query_embedding has {len(embedding)} values; shards hold 1 to {MAX_DIMENSION}"
            )
        array = np.asarray(embedding, dtype="<f4")
        if not np.isfinite(array).all():
            raise InvalidRecordError("query_embedding has a NaN or infinite value")
        packed = array.tobytes()
    key_of_query = record.get("query_key")
    if key_of_query is not None and not _QUERY_KEY.fullmatch(key_of_query):
        raise InvalidRecordError(f"query_key is not 64 hex characters: {key_of_query[:80]!r}")
    outcome = record["outcome"]
    timings = record["timings"]
    inputs = record["input"]
    strategy = record["strategy"]
    return DecisionFacts(
        decision_id=decision_id,
        event_time_ms=ts,
        selected_model=selected,
        candidates=names,
        propensities=props,
        exploration=bool(record.get("exploration", False)),
        status=str(outcome["status"]),
        latency_ms=_finite(timings.get("total_ms"), "timings.total_ms", low=0.0),
        upstream_latency_ms=_finite(
            outcome.get("upstream_latency_ms"), "outcome.upstream_latency_ms", low=0.0
        ),
        input_tokens=outcome.get("input_tokens"),
        output_tokens=outcome.get("output_tokens"),
        cost_usd=_finite(outcome.get("cost_usd"), "outcome.cost_usd", low=0.0),
        query_length=inputs.get("query_length"),
        requested_model=inputs.get("requested_model"),
        strategy=strategy.get("name"),
        strategy_version=strategy.get("version"),
        router_version=record.get("router_version"),
        ab_arm=record.get("ab_arm"),
        domain=record.get("domain"),
        embedding_model=(record.get("embedding_model") or MINILM_NAME) if packed else None,
        embedding=packed,
        query_key=key_of_query,
    )


@dataclass(frozen=True, slots=True)
class FeedbackFacts:
    """One quality signal for one candidate of one decision."""

    feedback_id: str
    decision_id: str
    score: float
    candidate: str | None  # None: the model that served
    cost_usd: float | None
    source: str
    # A blind verdict's grade per model, and the producer's oracle cell and policy.
    grades: Mapping[str, str] | None = None
    cell: str | None = None
    policy: str | None = None

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "s": self.score,
            "c": self.candidate,
            "cost": self.cost_usd,
            "src": self.source,
        }
        if self.grades is not None:
            state |= {"g": dict(self.grades), "cell": self.cell, "pol": self.policy}
        return state


def feedback_facts(record: Mapping[str, Any], *, key: bytes | None) -> FeedbackFacts:
    """Validate a decoded ``Feedback`` record."""
    decision_id = record["decision_id"]
    if not decision_id:
        raise InvalidRecordError("decision_id is empty")
    if not record["feedback_id"]:
        raise InvalidRecordError("feedback_id is empty")
    _key_matches(key, decision_id, "decision id")
    score = _finite(record["score"], "score", low=0.0, high=1.0)
    grades = record.get("verdict_grades")
    cell, policy = record.get("oracle_cell"), record.get("policy")
    if grades is not None:
        bad = {m: g for m, g in grades.items() if not m or g not in GRADES}
        if bad or not grades:
            raise InvalidRecordError(f"verdict_grades must map models to {GRADES}, got {bad}")
    if policy is not None and policy not in POLICIES:
        raise InvalidRecordError(f"policy {policy!r} is not one of {POLICIES}")
    if cell is not None and not (len(cell.split("/")) == 2 and set(cell.split("/")) <= {*GRADES}):
        raise InvalidRecordError(f"oracle_cell {cell!r} is not '<grade>/<grade>'")
    return FeedbackFacts(
        feedback_id=record["feedback_id"],
        decision_id=decision_id,
        score=float(score),
        candidate=record.get("candidate") or None,
        cost_usd=_finite(record.get("cost_usd"), "cost_usd", low=0.0),
        source=record["source"],
        grades=grades,
        cell=cell,
        policy=policy,
    )
