"""Helpers for the analytics integration tests: private topics, the service handle, records."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Message, Producer
from routeiq.contracts.serde import AvroSerde
from routeiq.kafka import make_consumer
from support.processes import ServiceProcess, wait_until

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "tests" / "artifacts" / "analytics"


@dataclass
class AnalyticsTopics:
    decisions_topic: str
    feedback_topic: str
    deadletter_topic: str
    decision_serde: AvroSerde
    feedback_serde: AvroSerde
    deadletter_serde: AvroSerde
    producer: Producer
    delivered: list[Message] = field(default_factory=list)

    def _send(self, topic: str, key: str | bytes | None, value: bytes | None) -> Message:
        reports: list[Message] = []

        def on_delivery(error: Any, message: Message) -> None:
            assert error is None, error
            reports.append(message)

        self.producer.produce(
            topic,
            key=key.encode() if isinstance(key, str) else key,
            value=value,
            on_delivery=on_delivery,
        )
        self.producer.flush(30)
        [message] = reports
        self.delivered.append(message)
        return message

    def decision(self, record: dict[str, Any]) -> Message:
        return self._send(
            self.decisions_topic, record["event_id"], self.decision_serde.encode(record)
        )

    def feedback(self, record: dict[str, Any]) -> Message:
        return self._send(
            self.feedback_topic, record["decision_id"], self.feedback_serde.encode(record)
        )

    def raw(self, topic: str, key: bytes | None, value: bytes | None) -> Message:
        return self._send(topic, key, value)


@dataclass
class AnalyticsHandle:
    url: str
    process: ServiceProcess
    group_id: str
    env: dict[str, str]

    def summary(self, window: str = "5m") -> dict[str, Any]:
        r = httpx.get(f"{self.url}/api/summary", params={"window": window}, timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_for(
        self, check: Callable[[dict[str, Any]], bool], *, window: str = "5m", what: str
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def ok() -> bool:
            seen["summary"] = self.summary(window)
            return check(seen["summary"])

        try:
            wait_until(ok, timeout=60, what=what, interval=0.3)
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}; last summary: {seen.get('summary')}\n{self.process.tail()}"
            ) from exc
        return seen["summary"]


def consume_all(
    stack: Any, topic: str, serde: AvroSerde, *, settle_s: float = 3.0
) -> list[tuple[Message, dict[str, Any]]]:
    """Every record on ``topic`` (a fresh group from the start), decoded with ``serde``."""
    consumer = make_consumer(
        stack.kafka, group_id=f"analytics-test-reader-{uuid.uuid4().hex[:8]}", client_id="test"
    )
    consumer.subscribe([topic])
    out: list[tuple[Message, dict[str, Any]]] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < settle_s:
            msg = consumer.poll(0.3)
            if msg is None or msg.error():
                continue
            out.append((msg, serde.decode(msg.value())))
            quiet_since = time.monotonic()
    finally:
        consumer.close()
    return out


def ms(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(round(epoch_s, 3), UTC)


def decision_record(
    decision_id: str,
    *,
    at: float,
    model: str,
    strategy: str = "threshold",
    arm: str | None = None,
    exploration: bool = False,
    status: str = "SUCCESS",
    input_tokens: int = 100,
    output_tokens: int = 100,
    cost_usd: float | None = None,
    embedding_ms: float = 1.0,
    strategy_ms: float = 0.5,
    fallback: bool = False,
) -> dict[str, Any]:
    """A ``RouterDecision`` as the gateway writes it (no text, no embedding)."""
    return {
        "event_id": decision_id,
        "trace_id": uuid.uuid4().hex,
        "span_id": uuid.uuid4().hex[:16],
        "timestamp": ms(at),
        "input": {"query_length": 42, "requested_model": "auto", "user_id": None},
        "strategy": {"name": strategy, "version": "1"},
        "candidate_deployments": [],
        "selected_deployment": model,
        "selection_reason": strategy,
        "timings": {
            "total_ms": embedding_ms + strategy_ms + 100.0,
            "strategy_ms": strategy_ms,
            "embedding_ms": embedding_ms,
        },
        "outcome": {
            "status": status,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "cost_usd": cost_usd,
            "upstream_latency_ms": 100.0,
        },
        "fallback": {"used": fallback, "attempted_deployments": [], "reason": None},
        "router_version": None,
        "exploration": exploration,
        "ab_arm": arm,
    }


def feedback_record(
    feedback_id: str, decision_id: str, score: float, *, candidate: str | None = None
) -> dict[str, Any]:
    return {
        "feedback_id": feedback_id,
        "decision_id": decision_id,
        "score": score,
        "source": "judge" if candidate else "user",
        "created_at": ms(time.time()),
        "candidate": candidate,
    }
