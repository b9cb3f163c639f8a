"""Rolling-window aggregates over decisions and feedback, in bounded memory.

Decisions land in the time bucket of their event time (clamped to now: a clock ahead of ours
does not create future buckets). Feedback is joined to its decision by decision id and counted
in the *decision's* bucket, so a window's quality describes the requests made in that window,
whenever they were graded. Feedback that arrives before its decision waits in a bounded
pending table and is applied when the decision comes.

Bounds, all from settings: buckets older than ``retention_s`` are dropped; the join remembers
at most ``max_join_decisions`` decisions (and none older than retention); at most
``max_pending_feedback`` records wait for their decision, each at most ``feedback_wait_s``;
each bucket keeps at most ``latency_sample_size`` latency values; at most ``max_labels``
distinct models, strategies and arms are told apart (the rest count as ``(other)``).

Counterfactuals cost nothing per model: a bucket keeps its requests' token sums, and a window
prices them at each candidate's price when it is read (``core/savings.py``). The candidates are
the configured list, else the models the window's decisions listed or that served.

Thread-safe: the consumer thread writes while HTTP handlers read, under one lock.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from routeiq.routing.datasets import ModelPrice

from routeiq_analytics.core.buckets import SUCCESS, Bucket, GroupStats, Window
from routeiq_analytics.core.records import Decision, Feedback
from routeiq_analytics.core.savings import Counterfactuals, counterfactuals
from routeiq_analytics.core.summary import summarize
from routeiq_analytics.core.timeseries import timeseries

if TYPE_CHECKING:  # the settings' module imports core; core needs it only for a signature
    from routeiq_analytics.config import AnalyticsSettings

OTHER = "(other)"

# What add_decision / add_feedback did with a record (also the pipeline counter names).
APPLIED = "applied"
DUPLICATE = "duplicate"
TOO_OLD = "too_old"
JOINED = "joined"
PENDING = "pending"
LATE = "late"


@dataclass(slots=True)
class _Joined:
    """What the join remembers about a decision: where its feedback is counted."""

    bucket: int
    model: str
    served: str  # the raw selected deployment (``model`` may be ``(other)``)
    strategy: str
    arm: str | None
    feedback_ids: set[str] = field(default_factory=set)


class Aggregator:
    """Decisions and feedback in, window summaries and time series out."""

    def __init__(
        self,
        *,
        bucket_s: int,
        retention_s: int,
        prices: Mapping[str, ModelPrice],
        strong_model: str | None = None,
        weak_model: str | None = None,
        candidates: Sequence[str] | None = None,
        best_model_min_graded: int = 20,
        latency_sample_size: int = 512,
        max_join_decisions: int = 200_000,
        max_pending_feedback: int = 50_000,
        feedback_wait_s: float = 3600.0,
        max_labels: int = 100,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
    ) -> None:
        if bucket_s < 1 or retention_s < bucket_s:
            raise ValueError("need 1 <= bucket_s <= retention_s")
        if (strong_model is None) != (weak_model is None):
            raise ValueError("give both the strong and the weak model, or neither (auto)")
        if strong_model is not None and weak_model is not None:
            if strong_model not in prices or weak_model not in prices:
                raise ValueError("the strong and weak models need prices")
            if strong_model == weak_model:
                raise ValueError("the strong and weak models must differ")
        if best_model_min_graded < 1:
            raise ValueError("best_model_min_graded must be at least 1")
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        # None: per window, the most expensive and the cheapest priced candidate.
        self.pair = (
            None if strong_model is None or weak_model is None else (strong_model, weak_model)
        )
        self.candidates = None if candidates is None else tuple(candidates)
        self.best_model_min_graded = best_model_min_graded
        self.latency_sample_size = latency_sample_size
        self._prices = dict(prices)
        self._max_join = max_join_decisions
        self._max_pending = max_pending_feedback
        self._feedback_wait_s = feedback_wait_s
        self._max_labels = max_labels
        self._clock = clock
        # Reservoir sampling only needs a uniform draw; a seeded generator keeps runs repeatable.
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self._lock = threading.Lock()
        self._buckets: dict[int, Bucket] = {}
        self._decisions: OrderedDict[str, _Joined] = OrderedDict()
        self._pending: OrderedDict[str, list[tuple[float, Feedback]]] = OrderedDict()
        self._pending_count = 0
        self._labels: dict[str, set[str]] = {"model": set(), "strategy": set(), "arm": set()}
        self._current = -1
        self.counters: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: AnalyticsSettings) -> Aggregator:
        """The aggregator ``settings`` describe (no ``candidates``: the decisions' own lists)."""
        return cls(
            bucket_s=settings.bucket,
            retention_s=settings.retention_s,
            prices=settings.price_table(),
            strong_model=settings.strong_model,
            weak_model=settings.weak_model,
            candidates=settings.candidates or None,
            best_model_min_graded=settings.best_model_min_graded,
            latency_sample_size=settings.latency_sample_size,
            max_join_decisions=settings.max_join_decisions,
            max_pending_feedback=settings.max_pending_feedback,
            feedback_wait_s=settings.feedback_wait,
            max_labels=settings.max_labels,
        )

    # ------------------------------------------------------------------ writing

    def add_decision(self, decision: Decision) -> str:
        """Count a decision in its bucket and apply any feedback that waited for it."""
        with self._lock:
            now = self._advance()
            if decision.decision_id in self._decisions:
                self.counters["decisions_duplicate"] += 1
                return DUPLICATE
            start = self._start_of(min(decision.timestamp_s, now))
            facts = _Joined(
                bucket=start,
                model=self._label("model", decision.model),
                served=decision.model,
                strategy=self._label("strategy", decision.strategy),
                arm=None if decision.ab_arm is None else self._label("arm", decision.ab_arm),
            )
            # Decisions older than retention are remembered too, so their feedback is counted
            # as late at once instead of waiting in the pending table.
            self._decisions[decision.decision_id] = facts
            if len(self._decisions) > self._max_join:
                self._decisions.popitem(last=False)
                self.counters["join_evicted"] += 1
            bucket = self._bucket(start)
            if bucket is None:
                outcome = TOO_OLD
            else:
                self._count(bucket, facts, decision)
                # Labelled like served models, so candidate names cannot grow without bound.
                # Kept per bucket, not per remembered decision (the join holds up to
                # max_join_decisions of those).
                bucket.candidates.update(self._label("model", c) for c in decision.candidates)
                outcome = APPLIED
            self.counters[f"decisions_{outcome}"] += 1
            waiting = self._pending.pop(decision.decision_id, None)
            if waiting:
                self._pending_count -= len(waiting)
                for _, feedback in waiting:
                    self.counters["feedback_waited"] += 1
                    self._join(facts, feedback)
            return outcome

    def add_feedback(self, feedback: Feedback) -> str:
        """Join a feedback record to its decision, or keep it until the decision arrives."""
        with self._lock:
            now = self._advance()
            facts = self._decisions.get(feedback.decision_id)
            if facts is not None:
                return self._join(facts, feedback)
            waiting = self._pending.setdefault(feedback.decision_id, [])
            if any(f.feedback_id == feedback.feedback_id for _, f in waiting):
                self.counters["feedback_duplicate"] += 1
                return DUPLICATE
            waiting.append((now, feedback))
            self._pending_count += 1
            while self._pending_count > self._max_pending:
                _, dropped = self._pending.popitem(last=False)
                self._pending_count -= len(dropped)
                self.counters["feedback_expired"] += len(dropped)
            return PENDING

    def count(self, name: str, n: int = 1) -> None:
        """Bump a pipeline counter kept alongside the aggregates (e.g. ``dead_lettered``)."""
        with self._lock:
            self.counters[name] += n

    def _count(self, bucket: Bucket, facts: _Joined, decision: Decision) -> None:
        ok = decision.status == SUCCESS
        price = self._prices.get(decision.model)
        if decision.cost_usd is not None:
            cost = decision.cost_usd
        elif price is not None:
            cost = price.cost(decision.input_tokens, decision.output_tokens)
        else:
            cost = 0.0
            bucket.unpriced += 1
        bucket.requests += 1
        bucket.successes += ok
        bucket.exploration += decision.exploration
        bucket.fallbacks += decision.fallback
        bucket.statuses[decision.status] += 1
        bucket.cost_usd += cost
        # Every request's tokens count in every always-X cost, an unpriced model's too: the
        # counterfactual is "these requests, on X", whoever served them.
        bucket.input_tokens += decision.input_tokens
        bucket.output_tokens += decision.output_tokens
        groups = [
            bucket.models.setdefault(facts.model, GroupStats()),
            bucket.strategies.setdefault(facts.strategy, GroupStats()),
        ]
        if facts.arm is not None:
            groups.append(bucket.arms.setdefault(facts.arm, GroupStats()))
        for group in groups:
            group.requests += 1
            group.successes += ok
            group.cost_usd += cost
        assert bucket.latency is not None
        bucket.latency.add(decision.routing_ms)

    def _join(self, facts: _Joined, feedback: Feedback) -> str:
        if feedback.feedback_id in facts.feedback_ids:
            self.counters["feedback_duplicate"] += 1
            return DUPLICATE
        facts.feedback_ids.add(feedback.feedback_id)
        bucket = self._buckets.get(facts.bucket)
        if bucket is None:
            self.counters["feedback_late"] += 1
            return LATE
        if feedback.candidate is None or feedback.candidate == facts.served:
            bucket.quality.add(feedback.score)
            bucket.models.setdefault(facts.model, GroupStats()).quality.add(feedback.score)
            bucket.strategies.setdefault(facts.strategy, GroupStats()).quality.add(feedback.score)
            if facts.arm is not None:
                bucket.arms.setdefault(facts.arm, GroupStats()).quality.add(feedback.score)
        else:
            # A shadow answer grades the candidate model only: the strategy did not serve it.
            model = self._label("model", feedback.candidate)
            bucket.models.setdefault(model, GroupStats()).shadow_quality.add(feedback.score)
        self.counters["feedback_joined"] += 1
        return JOINED

    # ------------------------------------------------------------------ time and bounds

    def _start_of(self, epoch_s: float) -> int:
        return math.floor(epoch_s / self.bucket_s) * self.bucket_s

    def _label(self, dimension: str, value: str) -> str:
        known = self._labels[dimension]
        if value in known:
            return value
        if len(known) >= self._max_labels:
            return OTHER
        known.add(value)
        return value

    def _bucket(self, start: int) -> Bucket | None:
        if start <= self._current - self.retention_s:
            return None
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = Bucket.new(start, latency_capacity=self.latency_sample_size, rng=self._rng)
            self._buckets[start] = bucket
        return bucket

    def _advance(self) -> float:
        """Now; on entering a new bucket, drop what fell out of retention or waited too long."""
        now = self._clock()
        current = self._start_of(now)
        if current == self._current:
            return now
        self._current = current
        cutoff = current - self.retention_s
        for start in [s for s in self._buckets if s <= cutoff]:
            del self._buckets[start]
        # The join is in arrival order, which is close to event-time order; entries behind an
        # out-of-order one go when the size bound reaches them.
        while self._decisions:
            first = next(iter(self._decisions.values()))
            if first.bucket > cutoff:
                break
            self._decisions.popitem(last=False)
        while self._pending:
            waiting = next(iter(self._pending.values()))
            if waiting[0][0] >= now - self._feedback_wait_s:
                break
            _, expired = self._pending.popitem(last=False)
            self._pending_count -= len(expired)
            self.counters["feedback_expired"] += len(expired)
        return now

    # ------------------------------------------------------------------ reading

    def _window(self, window_s: int) -> Window:
        now = self._advance()
        first = self._current - (math.ceil(window_s / self.bucket_s) - 1) * self.bucket_s
        buckets = [b for s, b in sorted(self._buckets.items()) if s >= first]
        return Window(window_s, self.bucket_s, now, first, self._current, buckets)

    def summary(self, window_s: int) -> dict[str, Any]:
        """The JSON-ready summary of the last ``window_s`` seconds (see ``summarize``)."""
        with self._lock:
            window = self._window(window_s)
            totals = window.totals()
            return summarize(
                window,
                totals=totals,
                latency_sample_size=self.latency_sample_size,
                counterfactuals=self._counterfactuals(totals),
                min_graded=self.best_model_min_graded,
                pipeline=self._pipeline(),
            )

    def timeseries(self, window_s: int, points: int) -> dict[str, Any]:
        """Column-oriented series over ``points`` equal steps of the window (chart input)."""
        with self._lock:
            return timeseries(
                self._window(window_s),
                points,
                counterfactuals=self._counterfactuals,
                prices=self._prices,
            )

    def _counterfactuals(self, totals: Bucket) -> Counterfactuals:
        served = totals.served()
        return counterfactuals(
            input_tokens=totals.input_tokens,
            output_tokens=totals.output_tokens,
            candidates=self.candidates
            if self.candidates is not None
            else totals.candidates | served,
            served=served,
            prices=self._prices,
            pair=self.pair,
        )

    def _pipeline(self) -> dict[str, int]:
        out = {
            name: self.counters[name]
            for name in (
                "decisions_applied",
                "decisions_too_old",
                "decisions_duplicate",
                "feedback_joined",
                "feedback_waited",
                "feedback_late",
                "feedback_expired",
                "feedback_duplicate",
                "join_evicted",
                "dead_lettered",
                # Poison read again (start-up replay, re-read after a crash): not new letters.
                "poison_replayed",
            )
        }
        out.update(self._sizes())
        return out

    def _sizes(self) -> dict[str, int]:
        return {
            "buckets": len(self._buckets),
            "join_decisions": len(self._decisions),
            "pending_feedback": self._pending_count,
        }

    def sizes(self) -> dict[str, int]:
        """How much state is held now (buckets, remembered decisions, waiting feedback)."""
        with self._lock:
            return self._sizes()
