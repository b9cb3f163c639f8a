"""Builders for the labeler's unit tests (no network)."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from routeiq.contracts.records import (
    CandidateDeployment,
    DecisionInput,
    DecisionOutcome,
    RouterDecision,
    Timings,
)
from routeiq.errors import ArtifactNotFoundError, IntegrityError
from routeiq.storage import StoredObject
from routeiq_labeler.core.labels import LabelPolicy
from routeiq_labeler.core.records import DecisionFacts, FeedbackFacts
from routeiq_labeler.core.state import LabelerState
from routeiq_labeler.core.windows import WindowSpec

MODELS = ("strong", "weak")


def decision_record(**overrides: Any) -> dict[str, Any]:
    """A decoded RouterDecision as fastavro returns it (timestamp as an aware datetime)."""
    event_id = overrides.pop("event_id", str(uuid.uuid4()))
    decision = RouterDecision(
        event_id=event_id,
        trace_id="0" * 32,
        span_id="1" * 16,
        timestamp_ms=0,
        input=DecisionInput(query_length=42, requested_model="auto", team_id="t"),
        strategy_name="knn",
        strategy_version="2",
        candidates=[
            CandidateDeployment("strong", "x", score=0.8, propensity=0.75),
            CandidateDeployment("weak", "y", score=0.2, propensity=0.25),
        ],
        selected_deployment="strong",
        selection_reason="argmax",
        timings=Timings(total_ms=1200.0, strategy_ms=3.0, embedding_ms=2.0),
        outcome=DecisionOutcome(
            status="SUCCESS",
            input_tokens=10,
            output_tokens=20,
            cost_usd=0.02,
            upstream_latency_ms=1100.0,
        ),
        router_version="r7",
        ab_arm="B",
        domain="math",
    )
    record = decision.to_record()
    record["timestamp"] = datetime(2025, 11, 13, 10, 0, 0, 123000, tzinfo=UTC)
    record.update(overrides)
    return record


def facts(decision_id: str | None = None, *, ts: int = 1_000_000, **changes: Any) -> DecisionFacts:
    base = DecisionFacts(
        decision_id=decision_id or str(uuid.uuid4()),
        event_time_ms=ts,
        selected_model="strong",
        candidates=MODELS,
        propensities=(0.75, 0.25),
        exploration=False,
        status="SUCCESS",
        latency_ms=1200.0,
        upstream_latency_ms=1100.0,
        input_tokens=10,
        output_tokens=20,
        cost_usd=0.02,
        query_length=42,
        requested_model="auto",
        strategy="knn",
        strategy_version="2",
        router_version="r7",
        ab_arm="B",
        domain="math",
        embedding_model=None,
        embedding=None,
    )
    return dataclasses.replace(base, **changes)


def fb(
    decision_id: str,
    score: float,
    *,
    candidate: str | None = None,
    cost: float | None = None,
    feedback_id: str | None = None,
) -> FeedbackFacts:
    return FeedbackFacts(
        feedback_id=feedback_id or str(uuid.uuid4()),
        decision_id=decision_id,
        score=score,
        candidate=candidate,
        cost_usd=cost,
        source="judge",
    )


def new_state(
    *,
    size_ms: int = 1000,
    lateness_ms: int = 0,
    ttl_ms: int = 500,
    quality_source: str = "feedback_or_outcome",
    tables: tuple[dict, dict, dict] | None = None,
) -> tuple[LabelerState, tuple[dict, dict, dict]]:
    tables = tables or ({}, {}, {})
    state = LabelerState(
        decisions=tables[0],
        feedback=tables[1],
        meta=tables[2],
        policy=LabelPolicy(quality_source=quality_source, ttl_ms=ttl_ms),  # type: ignore[arg-type]
        windows=WindowSpec(size_ms, lateness_ms),
    )
    return state, tables


class MemoryStore:
    """An in-process stand-in for ``ArtifactStore`` (put/get/list with sha256), so the sink's
    merge logic runs in unit tests without S3. Integration tests use the real store."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.puts: list[str] = []

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str = ""
    ) -> StoredObject:
        self.objects[(bucket, key)] = bytes(data)
        self.puts.append(key)
        return StoredObject(bucket, key, None, hashlib.sha256(data).hexdigest(), len(data))

    def get_bytes(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        expected_sha256: str | None = None,
    ) -> bytes:
        try:
            data = self.objects[(bucket, key)]
        except KeyError as exc:
            raise ArtifactNotFoundError(f"{key} not found") from exc
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise IntegrityError(key)
        return data

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
