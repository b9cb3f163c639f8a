"""Labels: quality from feedback or from the outcome, reward = quality - λ·cost, one shard row.

Feedback for one decision arrives as several records: ``candidate = null`` grades the model
that served, any other candidate is a shadow outcome. Scores of one candidate are averaged (an
order-independent choice, so a replay after a crash labels the same way). Every graded
candidate becomes an entry of ``outcome_models``/``outcome_qualities``/``outcome_costs``, the
served model first, which is what makes a row full-information for the trainer. A blind
verdict (``verdict_grades``) grades every answer it saw at once: the models other than the
record's own become shadow scores (correct 1, partial 0.5, wrong 0) and their grades feed the
oracle columns as given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from routeiq.labeling.facts import DecisionFacts
from routeiq.routing.judge import GRADE_QUALITY
from routeiq.routing.oracle import GRADES, Grade, Oracle, OracleLabel

# Where a row's quality comes from: a grade only, the request's outcome only, or a grade when
# one arrived within the TTL and the outcome otherwise.
QualitySource = Literal["feedback", "outcome", "feedback_or_outcome"]
NO_LABEL = "none"  # quality_source of a row that had neither feedback nor an allowed fallback
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(ms: int) -> datetime:
    """Epoch milliseconds → an exact UTC datetime (no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True)
class LabelPolicy:
    """How a decision plus its feedback becomes a label, and how long it waits for feedback."""

    quality_source: QualitySource = "feedback_or_outcome"
    cost_weight: float = 10.0
    latency_slo_ms: float = 30_000.0
    slow_success_quality: float = 0.5
    ttl_ms: int = 600_000
    # Grades, cell and policy for rows whose cheap and strong answers were both graded.
    oracle: Oracle | None = None

    def outcome_quality(self, facts: DecisionFacts) -> float:
        """1 for a success within the latency SLO, ``slow_success_quality`` for a slower one,
        0 for anything else."""
        if facts.status != "SUCCESS":
            return 0.0
        latency = facts.upstream_latency_ms
        if latency is None:
            latency = facts.latency_ms
        if latency is not None and latency > self.latency_slo_ms:
            return self.slow_success_quality
        return 1.0

    def resolved(
        self,
        selected_model: str,
        feedback: Mapping[str, Mapping[str, Any]] | None,
        *,
        arrived_ms: int,
        now_ms: int,
    ) -> bool:
        """True once a decision may be labelled: the served model is graded or the TTL ran out.

        With ``quality_source=outcome`` nothing is waited for.
        """
        if self.quality_source == "outcome":
            return True
        if feedback and any(
            (f.get("c") or selected_model) == selected_model for f in feedback.values()
        ):
            return True
        return now_ms - arrived_ms >= self.ttl_ms

    def row(
        self,
        facts: DecisionFacts,
        feedback: Mapping[str, Mapping[str, Any]] | None,
        *,
        window_start_ms: int,
        late: bool,
    ) -> dict[str, Any]:
        """The shard row (``routeiq.shards.SCHEMA`` columns) for one decision."""
        served = facts.selected_model
        scores: dict[str, list[float]] = {}
        costs: dict[str, list[float]] = {}
        verdicts: dict[str, list[str]] = {}  # a blind verdict's grades, per model
        labels: set[tuple[str | None, str]] = set()  # verdicts' (cell, policy)
        for fb in (feedback or {}).values():
            model = fb.get("c") or served
            scores.setdefault(model, []).append(float(fb["s"]))
            if fb.get("cost") is not None:
                costs.setdefault(model, []).append(float(fb["cost"]))
            for other, grade in (fb.get("g") or {}).items():
                verdicts.setdefault(other, []).append(grade)
                if other != model:  # the record's own model is graded by its score already
                    scores.setdefault(other, []).append(GRADE_QUALITY[grade])
            if fb.get("pol"):
                labels.add((fb.get("cell"), fb["pol"]))

        if self.quality_source != "outcome" and served in scores:
            quality, source = _mean(scores[served]), "feedback"
        elif self.quality_source in {"outcome", "feedback_or_outcome"}:
            quality, source = self.outcome_quality(facts), "outcome"
        else:
            # quality_source=feedback and no grade within the TTL: the row is still written
            # (every decision lands in exactly one shard) but carries no label; the trainer
            # treats NaN quality as unobserved.
            quality, source = math.nan, NO_LABEL
        cost = facts.cost_usd
        reward = quality - self.cost_weight * (cost or 0.0)

        shadows = sorted(m for m in scores if m != served)
        outcome_models = [served, *shadows]
        outcome_qualities = [quality] + [_mean(scores[m]) for m in shadows]
        outcome_costs = [cost] + [_mean(costs[m]) if m in costs else None for m in shadows]
        oracle = self._oracle(
            outcome_models,
            outcome_qualities,
            graded=source == "feedback",
            verdicts=verdicts,
            labels=labels,
        )
        return {
            "decision_id": facts.decision_id,
            "event_time": utc(facts.event_time_ms),
            "window_start": utc(window_start_ms),
            "late": late,
            "embedding": facts.embedding_list(),
            "embedding_model": facts.embedding_model,
            "query_length": facts.query_length,
            "domain": facts.domain,
            "requested_model": facts.requested_model,
            "strategy": facts.strategy,
            "strategy_version": facts.strategy_version,
            "router_version": facts.router_version,
            "ab_arm": facts.ab_arm,
            "selected_model": served,
            "exploration": facts.exploration,
            "propensity": facts.propensity,
            "candidate_models": list(facts.candidates),
            "candidate_propensities": list(facts.propensities),
            "status": facts.status,
            "latency_ms": facts.latency_ms,
            "upstream_latency_ms": facts.upstream_latency_ms,
            "input_tokens": facts.input_tokens,
            "output_tokens": facts.output_tokens,
            "cost_usd": cost,
            "quality": quality,
            "quality_source": source,
            "reward": reward,
            "outcome_models": outcome_models,
            "outcome_qualities": outcome_qualities,
            "outcome_costs": outcome_costs,
            "feedback_count": len(feedback or {}),
            "query_key": facts.query_key,
            **oracle,
        }

    def _oracle(
        self,
        models: list[str],
        qualities: list[float],
        *,
        graded: bool,
        verdicts: Mapping[str, list[str]],
        labels: set[tuple[str | None, str]],
    ) -> dict[str, Any]:
        """The oracle columns. Only graded answers count: an outcome-derived quality (the
        request succeeded) says nothing about whether the answer was correct. A blind
        verdict's grade is kept as given (when the verdicts on a model agree) rather than
        re-derived from its quality; the configured matrix names the cell's policy. Without
        an oracle configured, the verdicts' own cell and policy fill the columns when they
        agree."""
        if self.oracle is None:
            if len(labels) != 1:
                return {}
            ((cell, policy),) = labels
            grades = [_agreed(verdicts.get(m)) for m in models]
            return {"outcome_grades": grades, "oracle_cell": cell, "policy": policy}
        known = {
            m: q
            for i, (m, q) in enumerate(zip(models, qualities, strict=True))
            if (graded or i > 0) and q is not None and not math.isnan(q)
        }
        scale = self.oracle.scale
        grades_by_model = {m: _agreed(verdicts.get(m)) or scale.grade(q) for m, q in known.items()}
        cheap = grades_by_model.get(self.oracle.cheap)
        strong = grades_by_model.get(self.oracle.strong)
        label = None
        if cheap is not None and strong is not None:
            label = OracleLabel(cheap, strong, self.oracle.matrix.policy(cheap, strong))
        return {
            "outcome_grades": [grades_by_model.get(m) for m in models],
            "oracle_cell": label.cell if label else None,
            "policy": label.policy if label else None,
        }


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _agreed(grades: list[str] | None) -> Grade | None:
    """The grade every verdict gave a model; None when none did or they differ."""
    if not grades or len(set(grades)) != 1:
        return None
    return next((g for g in GRADES if g == grades[0]), None)
