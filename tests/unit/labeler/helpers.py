"""Builders for the labeler's unit tests (no network); decisions and their facts come from
``support.records``."""

from __future__ import annotations

import uuid

from routeiq.labeling import FeedbackFacts, LabelPolicy
from routeiq_labeler.core.state import LabelerState
from routeiq_labeler.core.windows import WindowSpec


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
