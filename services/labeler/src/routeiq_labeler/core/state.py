"""The labeler's state machine over three key/value tables: join, window, flush, retrain count.

The tables are any ``MutableMapping``: Faust tables backed by changelog topics in the worker,
plain dicts in the benchmark's baseline loop and in unit tests. Every key starts with the
source partition (``"<partition>/<rest>"``), so each change lands in the changelog partition
of the source partition it belongs to, even when a timer makes it.

    decisions  "<p>/<decision id>" → {"w": window start ms, "late": bool, "t": arrival ms,
                                      "d": DecisionFacts state}
    feedback   "<p>/<decision id>" → {"t": first arrival ms, "f": {feedback id: Feedback state}}
    meta       "<p>/closed"        → every window of partition p starting before this is closed
               "<p>/new"           → {manifest key: {"rows", "sha"}} written since the last
                                      retrain request

Replays after a crash are harmless: a decision already buffered is a duplicate, feedback is
keyed by its own id, and shards are written by ``ShardSink`` as a merge with whatever the
object already holds. Nothing here does I/O; the worker writes ``FlushPlan``s and reports back
with ``complete``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from routeiq.labeling import DecisionFacts, FeedbackFacts, LabelPolicy
from routeiq.shards import ShardManifest

from routeiq_labeler.core.windows import WindowSpec
from routeiq_labeler.errors import InvalidRecordError

DecisionOutcome = Literal["new", "late", "duplicate"]
FeedbackOutcome = Literal["joined", "waiting", "duplicate"]

# Feedback is kept per decision; a flood for one decision id is abuse, not grading.
MAX_FEEDBACK_PER_DECISION = 64
# Feedback waits for its decision at least this long, even when labels do not wait at all.
MIN_ORPHAN_TTL_MS = 60_000


def state_key(partition: int, rest: str) -> str:
    """``"<partition>/<rest>"``: the partition prefix routes the changelog record."""
    return f"{partition}/{rest}"


def split_key(key: str) -> tuple[int, str]:
    partition, _, rest = key.partition("/")
    return int(partition), rest


@dataclass(frozen=True)
class FlushPlan:
    """One shard to write: a window's rows of one partition (regular or late)."""

    partition: int
    window_start: int
    window_end: int
    late: bool
    # (decision id, decisions-table entry, feedback items used for the label or None)
    entries: tuple[tuple[str, Mapping[str, Any], Mapping[str, Any] | None], ...]

    @property
    def size(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class FlushResult:
    """What writing a plan did."""

    manifest: ShardManifest | None  # None: nothing to write (every row was a duplicate)
    added_rows: int  # rows of the plan that the object did not hold before
    duplicates: int  # late rows dropped because the window's regular shard already has them
    by_source: Mapping[str, int] = field(default_factory=dict)  # plan rows per quality source
    # Labelled rows new to the object: what counts towards the retrain threshold (a decision
    # that never got feedback under quality_source=feedback is in the shard, but teaches
    # nothing).
    labeled_rows: int = 0


# repr=False: the tables can hold a whole window of decisions.
@dataclass(kw_only=True, eq=False, repr=False)
class LabelerState:
    """Join decisions with feedback, assign event-time windows and decide what to flush."""

    # The partition-keyed tables (Faust's in the worker, dicts in tests).
    decisions: MutableMapping[str, Any]
    feedback: MutableMapping[str, Any]
    meta: MutableMapping[str, Any]
    policy: LabelPolicy
    windows: WindowSpec
    track_new_shards: bool = True
    # Derived, in memory: rebuilt from the tables after every (re)assignment.
    _index: dict[int, dict[tuple[bool, int], set[str]]] = field(default_factory=dict, init=False)
    _orphans: dict[int, dict[str, int]] = field(default_factory=dict, init=False)
    _watermarks: dict[int, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._orphan_ttl_ms = max(self.policy.ttl_ms, MIN_ORPHAN_TTL_MS)

    # ------------------------------------------------------------------ events

    def on_decision(self, partition: int, facts: DecisionFacts, *, now_ms: int) -> DecisionOutcome:
        """Buffer a decision in its window (or its window's late buffer once that closed)."""
        key = state_key(partition, facts.decision_id)
        if key in self.decisions:
            return "duplicate"
        window = self.windows.start(facts.event_time_ms)
        late = window < self.closed_until(partition)
        self.decisions[key] = {"w": window, "late": late, "t": now_ms, "d": facts.to_state()}
        self._index.setdefault(partition, {}).setdefault((late, window), set()).add(
            facts.decision_id
        )
        self._orphans.get(partition, {}).pop(facts.decision_id, None)
        watermark = max(self._watermarks.get(partition, facts.event_time_ms), facts.event_time_ms)
        self._watermarks[partition] = watermark
        self.advance(partition, self.windows.closable_until(watermark))
        return "late" if late else "new"

    def on_feedback(self, partition: int, fb: FeedbackFacts, *, now_ms: int) -> FeedbackOutcome:
        """Attach feedback to its decision, or keep it until the decision arrives (or expiry)."""
        key = state_key(partition, fb.decision_id)
        current = self.feedback.get(key)
        items = dict(current["f"]) if current else {}
        if fb.feedback_id in items:
            return "duplicate"
        if len(items) >= MAX_FEEDBACK_PER_DECISION:
            raise InvalidRecordError(
                f"decision {fb.decision_id} already has {len(items)} feedback records "
                f"(at most {MAX_FEEDBACK_PER_DECISION} are kept)"
            )
        items[fb.feedback_id] = fb.to_state()
        first = int(current["t"]) if current else now_ms
        self.feedback[key] = {"t": first, "f": items}
        if key in self.decisions:
            return "joined"
        self._orphans.setdefault(partition, {}).setdefault(fb.decision_id, first)
        return "waiting"

    # ------------------------------------------------------------------ windows

    def closed_until(self, partition: int) -> int:
        """Windows of ``partition`` starting before this are closed (new decisions are late)."""
        return int(self.meta.get(state_key(partition, "closed"), 0))

    def advance(self, partition: int, until_ms: int) -> bool:
        """Close every window starting before ``until_ms``; closing never goes back."""
        if until_ms > self.closed_until(partition):
            self.meta[state_key(partition, "closed")] = until_ms
            return True
        return False

    def close_idle(self, partition: int, now_ms: int) -> bool:
        """Close windows by the wall clock; the worker calls this only for a caught-up, idle
        partition, where no earlier event can still be on its way."""
        return self.advance(partition, self.windows.closable_until(now_ms))

    def watermark(self, partition: int) -> int | None:
        return self._watermarks.get(partition)

    # ------------------------------------------------------------------ flushing

    def plan(self, partition: int, now_ms: int) -> list[FlushPlan]:
        """Shards due now: closed windows whose every decision is resolved, and the resolved
        part of each late buffer. Regular shards come before late ones of the same window."""
        closed = self.closed_until(partition)
        plans: list[FlushPlan] = []
        groups = self._index.get(partition, {})
        for late, window in sorted(groups, key=lambda g: (g[1], g[0])):
            if not late and window >= closed:
                continue
            entries: list[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]] = []
            blocked = False
            for decision_id in sorted(groups[(late, window)]):
                key = state_key(partition, decision_id)
                entry = self.decisions.get(key)
                if entry is None:
                    continue
                fb = self.feedback.get(key)
                items = fb["f"] if fb else None
                if self.policy.resolved(
                    entry["d"]["sel"], items, arrived_ms=int(entry["t"]), now_ms=now_ms
                ):
                    entries.append((decision_id, entry, items))
                elif not late:
                    # A window is written once, whole: wait for its last decision's label.
                    blocked = True
                    break
            if entries and not blocked:
                plans.append(
                    FlushPlan(
                        partition=partition,
                        window_start=window,
                        window_end=self.windows.end(window),
                        late=late,
                        entries=tuple(entries),
                    )
                )
        return plans

    def complete(self, plan: FlushPlan, result: FlushResult, *, now_ms: int) -> None:
        """Forget what ``plan`` wrote; feedback that arrived during the write is kept apart."""
        partition = plan.partition
        group = self._index.get(partition, {}).get((plan.late, plan.window_start))
        orphans = self._orphans.setdefault(partition, {})
        for decision_id, _entry, used in plan.entries:
            key = state_key(partition, decision_id)
            self.decisions.pop(key, None)
            if group is not None:
                group.discard(decision_id)
            current = self.feedback.get(key)
            if current is None:
                continue
            remaining = {k: v for k, v in current["f"].items() if k not in (used or {})}
            if remaining:
                # Graded after its row was written: it waits like orphan feedback and is
                # counted as unmatched when it expires.
                self.feedback[key] = {"t": now_ms, "f": remaining}
                orphans[decision_id] = now_ms
            else:
                del self.feedback[key]
        if group is not None and not group:
            del self._index[partition][(plan.late, plan.window_start)]
        if self.track_new_shards and result.manifest is not None and result.labeled_rows > 0:
            key = state_key(partition, "new")
            new = dict(self.meta.get(key) or {})
            previous = int(new.get(result.manifest.key, {}).get("rows", 0))
            new[result.manifest.key] = {
                "rows": previous + result.labeled_rows,
                "sha": result.manifest.sha256,
            }
            self.meta[key] = new

    def expire_feedback(self, partition: int, now_ms: int) -> int:
        """Drop feedback whose decision never came (or was written before it); returns how
        many feedback records were dropped."""
        orphans = self._orphans.get(partition, {})
        expired = [d for d, t in orphans.items() if now_ms - t >= self._orphan_ttl_ms]
        dropped = 0
        for decision_id in expired:
            del orphans[decision_id]
            key = state_key(partition, decision_id)
            if key in self.decisions:
                continue
            entry = self.feedback.pop(key, None)
            if entry is not None:
                dropped += len(entry["f"])
        return dropped

    # ------------------------------------------------------------------ retraining

    def unrequested(self, partitions: Iterable[int]) -> dict[str, int]:
        """Shards written since the last retrain request: manifest key → new labelled rows."""
        out: dict[str, int] = {}
        for partition in partitions:
            for key, info in (self.meta.get(state_key(partition, "new")) or {}).items():
                out[key] = out.get(key, 0) + int(info["rows"])
        return out

    def mark_requested(self, partitions: Iterable[int], keys: Iterable[str]) -> None:
        """Forget the given shards' counts: a retrain request now covers them."""
        done = set(keys)
        for partition in partitions:
            key = state_key(partition, "new")
            new = self.meta.get(key)
            if not new:
                continue
            left = {k: v for k, v in new.items() if k not in done}
            if left != new:
                self.meta[key] = left

    # ------------------------------------------------------------------ bookkeeping

    def rebuild(self, partitions: Iterable[int]) -> None:
        """Rebuild the in-memory indexes from the tables (after recovery or a rebalance)."""
        owned = set(partitions)
        index: dict[int, dict[tuple[bool, int], set[str]]] = {p: {} for p in owned}
        orphans: dict[int, dict[str, int]] = {p: {} for p in owned}
        for key, entry in list(self.decisions.items()):
            partition, decision_id = split_key(key)
            if partition in owned:
                group = (bool(entry["late"]), int(entry["w"]))
                index[partition].setdefault(group, set()).add(decision_id)
        for key, entry in list(self.feedback.items()):
            partition, decision_id = split_key(key)
            if partition in owned and key not in self.decisions:
                orphans[partition][decision_id] = int(entry["t"])
        self._index = index
        self._orphans = orphans
        self._watermarks = {p: w for p, w in self._watermarks.items() if p in owned}

    def pending(self, partition: int) -> int:
        """Decisions buffered for ``partition`` (open windows, waiting labels, late rows)."""
        return sum(len(ids) for ids in self._index.get(partition, {}).values())

    def waiting_feedback(self, partition: int) -> int:
        return len(self._orphans.get(partition, {}))
