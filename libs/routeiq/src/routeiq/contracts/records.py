"""Typed builders for the records RouteIQ produces: one per contract, used by every producer.

Each builder is a frozen dataclass whose fields mirror its ``.avsc`` (a unit test checks the
field names, nesting and defaults against the working schema, so a schema change that the
builder misses fails there, not in production). ``to_record()`` returns the plain dict the
serde encodes; nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypedDict, Unpack

from routeiq.errors import ContractError

# A dead letter's reason is a diagnostic, not a log: long tracebacks are cut to this.
MAX_REASON_CHARS = 4000


# --------------------------------------------------------------------------- RouterDecision


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """What was asked (never the prompt text: only its length and who asked, hashed)."""

    query_length: int
    requested_model: str
    user_id: str | None = None
    team_id: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateDeployment:
    model_name: str
    provider: str
    score: float | None = None
    available: bool = True
    propensity: float | None = None


@dataclass(frozen=True, slots=True)
class Timings:
    total_ms: float
    strategy_ms: float
    embedding_ms: float


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    status: str
    input_tokens: int
    output_tokens: int
    error_type: str | None = None
    cost_usd: float | None = None
    upstream_latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Fallback:
    used: bool = False
    attempted_deployments: Sequence[str] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RouterDecision:
    """One routing decision and how the request ended (``routeiq.router_decision.v1``)."""

    event_id: str
    trace_id: str
    span_id: str
    timestamp_ms: int
    input: DecisionInput
    strategy_name: str
    strategy_version: str
    candidates: Sequence[CandidateDeployment]
    selected_deployment: str
    selection_reason: str
    timings: Timings
    outcome: DecisionOutcome
    fallback: Fallback = field(default_factory=Fallback)
    router_version: str | None = None
    exploration: bool = False
    ab_arm: str | None = None
    # A float32 numpy array (the serde packs it without a Python float per element) or a list.
    query_embedding: Any = None
    embedding_model: str | None = None
    domain: str | None = None
    query_key: str | None = None  # routeiq.routing.querykey: HMAC of the text, never the text

    def to_record(self) -> dict[str, Any]:
        i, t, o, f = self.input, self.timings, self.outcome, self.fallback
        return {
            "event_id": self.event_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "timestamp": self.timestamp_ms,
            "input": {
                "query_length": i.query_length,
                "requested_model": i.requested_model,
                "user_id": i.user_id,
                "team_id": i.team_id,
            },
            "strategy": {"name": self.strategy_name, "version": self.strategy_version},
            "candidate_deployments": [
                {
                    "model_name": c.model_name,
                    "provider": c.provider,
                    "score": c.score,
                    "available": c.available,
                    "propensity": c.propensity,
                }
                for c in self.candidates
            ],
            "selected_deployment": self.selected_deployment,
            "selection_reason": self.selection_reason,
            "timings": {
                "total_ms": t.total_ms,
                "strategy_ms": t.strategy_ms,
                "embedding_ms": t.embedding_ms,
            },
            "outcome": {
                "status": o.status,
                "input_tokens": o.input_tokens,
                "output_tokens": o.output_tokens,
                "total_tokens": o.input_tokens + o.output_tokens,
                "error_type": o.error_type,
                "cost_usd": o.cost_usd,
                "upstream_latency_ms": o.upstream_latency_ms,
            },
            "fallback": {
                "used": f.used,
                "attempted_deployments": list(f.attempted_deployments),
                "reason": f.reason,
            },
            "router_version": self.router_version,
            "exploration": self.exploration,
            "ab_arm": self.ab_arm,
            "query_embedding": self.query_embedding,
            # The model is named only alongside the vector it produced.
            "embedding_model": self.embedding_model if self.query_embedding is not None else None,
            "domain": self.domain,
            "query_key": self.query_key,
        }


# --------------------------------------------------------------------------- DeadLetter


class KafkaMessage(Protocol):
    """The part of confluent-kafka's ``Message`` a dead letter reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def key(self) -> Any: ...
    def value(self) -> Any: ...
    def headers(self) -> Any: ...


Headers = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


def header_text(headers: Headers) -> dict[str, str]:
    """Kafka headers as text: values decoded as UTF-8 with replacement, ``None`` as ``""``."""
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, bytes | bytearray):
            out[str(name)] = bytes(value).decode("utf-8", errors="replace")
        else:
            out[str(name)] = "" if value is None else str(value)
    return out


# The Kafka header naming the consumer that wrote a dead letter: read back without decoding.
CONSUMER_HEADER = "routeiq-consumer"


class ExplicitCause(TypedDict, total=False):
    """Why a record is dead-lettered, said explicitly: an error type and a reason."""

    error_type: str | None
    reason: str | None


class DeadLetterCause(ExplicitCause, total=False):
    """Why a record is dead-lettered: the exception (its class and message), or an explicit
    type and reason; an explicit one wins over the exception's."""

    error: BaseException | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a consumer gave up on: its raw bytes, where it came from and why
    (``routeiq.deadletter.v1``). Every consumer builds it here, so the rules are one: the
    source timestamp only when the broker set one, headers as text, the reason cut to
    ``MAX_REASON_CHARS``."""

    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str]
    error_type: str
    reason: str
    consumer: str
    failed_at_ms: int

    @classmethod
    def of(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        consumer: str,
        now_ms: int,
        **cause: Unpack[DeadLetterCause],
    ) -> DeadLetter:
        """From a record's parts and either the exception or an explicit type and reason."""
        error, error_type, reason = cause.get("error"), cause.get("error_type"), cause.get("reason")
        if error is not None:
            error_type = error_type or type(error).__name__
            reason = reason or str(error) or repr(error)
        if error_type is None or reason is None:
            raise ValueError("a dead letter needs an error or an error_type and a reason")
        return cls(
            source_topic=topic,
            source_partition=int(partition),
            source_offset=int(offset),
            source_timestamp_ms=timestamp_ms if timestamp_ms and timestamp_ms > 0 else None,
            key=bytes(key) if key is not None else None,
            value=bytes(value) if value is not None else None,
            headers=header_text(headers),
            error_type=error_type,
            reason=reason[:MAX_REASON_CHARS],
            consumer=consumer,
            failed_at_ms=now_ms,
        )

    @classmethod
    def from_message(
        cls,
        message: KafkaMessage,
        *,
        consumer: str,
        now_ms: int,
        **cause: Unpack[DeadLetterCause],
    ) -> DeadLetter:
        """From a confluent-kafka ``Message`` (timestamp type 0 means "not available")."""
        timestamp_type, timestamp_ms = message.timestamp()
        return cls.of(
            topic=str(message.topic()),
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp_ms=timestamp_ms if timestamp_type != 0 else None,
            key=message.key(),
            value=message.value(),
            headers=message.headers(),
            consumer=consumer,
            now_ms=now_ms,
            **cause,
        )

    @property
    def source_position(self) -> tuple[str, int, int]:
        return self.source_topic, self.source_partition, self.source_offset

    @property
    def kafka_key(self) -> bytes:
        """Dead letters are keyed by their source position, ``topic/partition/offset`` (a
        topic name has no ``/``): the identity that makes a replayed one recognisable."""
        return f"{self.source_topic}/{self.source_partition}/{self.source_offset}".encode()

    def to_record(self) -> dict[str, Any]:
        return {
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "source_timestamp": self.source_timestamp_ms,
            "key": self.key,
            "value": self.value,
            "headers": dict(self.headers),
            "error_type": self.error_type,
            "reason": self.reason,
            "consumer": self.consumer,
            "failed_at": self.failed_at_ms,
        }


# --------------------------------------------------------------------------- RoutingConfigChange


@dataclass(frozen=True, slots=True)
class RoutingConfigChange:
    """One version of a fleet's routing configuration (``routeiq.routing.config.v1``): the
    whole configuration (``config``, a strategy change's JSON shape) and who set it, when and
    why. ``change`` is what was asked for; a rollback names the version it restores."""

    change_id: str
    fleet: str
    version: int
    action: str
    config: Mapping[str, Any]
    change: Mapping[str, Any]
    author: str
    written_by: str
    changed_at_ms: int
    reason: str | None = None
    rollback_to: int | None = None

    @property
    def kafka_key(self) -> bytes:
        return self.fleet.encode()

    def to_record(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "fleet": self.fleet,
            "version": self.version,
            "action": self.action,
            # sort_keys: one configuration, one text (versions compare by their JSON).
            "config_json": json.dumps(self.config, sort_keys=True),
            "change_json": json.dumps(self.change, sort_keys=True),
            "rollback_to": self.rollback_to,
            "author": self.author,
            "written_by": self.written_by,
            "changed_at": self.changed_at_ms,
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> RoutingConfigChange:
        """The change in a decoded record; ``ContractError`` for one no replica can act on
        (JSON that is not an object, a version below 1, an action it does not know)."""
        try:
            config, change = json.loads(r["config_json"]), json.loads(r["change_json"])
            version, action = int(r["version"]), str(r["action"])
            fleet = str(r["fleet"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(f"routing configuration record: {exc!r}") from exc
        if not isinstance(config, dict) or not isinstance(change, dict):
            raise ContractError("routing configuration: config_json and change_json are objects")
        if version < 1 or action not in ("UPDATE", "ROLLBACK"):
            raise ContractError(f"routing configuration: version {version}, action {action!r}")
        return cls(
            change_id=str(r["change_id"]),
            fleet=fleet,
            version=version,
            action=action,
            config=config,
            change=change,
            author=str(r["author"]),
            written_by=str(r["written_by"]),
            changed_at_ms=_millis(r["changed_at"]),
            reason=r.get("reason"),
            rollback_to=r.get("rollback_to"),
        )

    def describe(self) -> dict[str, Any]:
        """The audit view: who, when, what, why (the configuration itself included)."""
        return {
            "version": self.version,
            "action": self.action,
            "author": self.author,
            "written_by": self.written_by,
            "changed_at_ms": self.changed_at_ms,
            "reason": self.reason,
            "rollback_to": self.rollback_to,
            "change": dict(self.change),
            "config": dict(self.config),
        }


def _millis(value: Any) -> int:
    # Avro readers hand a timestamp-millis back as a datetime (fastavro) or as its int.
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)
