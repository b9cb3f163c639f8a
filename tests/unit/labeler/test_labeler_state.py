"""The state machine: join, windows, flush plans, feedback expiry, retrain counts, and the
exactly-once property across crashes (simulated with a changelog cut at any durable prefix)."""

from __future__ import annotations

import math
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.labeling import LabelPolicy
from routeiq.shards import SCHEMA, decode_table, list_manifests
from routeiq_labeler.core.state import (
    MAX_FEEDBACK_PER_DECISION,
    FlushResult,
    LabelerState,
    state_key,
)
from routeiq_labeler.core.windows import WindowSpec
from routeiq_labeler.errors import InvalidRecordError
from routeiq_labeler.sink import ShardSink
from support.records import labeler_facts as facts
from support.storage import MemoryStore
from unit.labeler.helpers import fb, new_state

NOTHING = FlushResult(manifest=None, added_rows=0, duplicates=0)


def test_feedback_joins_its_decision_in_either_order_and_replays_are_duplicates() -> None:
    state, (decisions, feedback, _) = new_state()
    early = facts("early", ts=100)
    assert state.on_feedback(0, fb("early", 0.5, feedback_id="a"), now_ms=0) == "waiting"
    assert state.on_decision(0, early, now_ms=1) == "new"
    assert state.on_decision(0, early, now_ms=2) == "duplicate"
    assert state.on_feedback(0, fb("early", 0.5, feedback_id="a"), now_ms=3) == "duplicate"
    assert state.on_feedback(0, fb("early", 0.9, feedback_id="b"), now_ms=3) == "joined"
    assert set(feedback[state_key(0, "early")]["f"]) == {"a", "b"}
    assert decisions[state_key(0, "early")]["t"] == 1  # a replay keeps the first arrival


def test_windows_close_by_watermark_and_later_decisions_are_late() -> None:
    state, _ = new_state(size_ms=1000, lateness_ms=200)
    assert state.on_decision(0, facts("a", ts=100), now_ms=0) == "new"
    assert state.on_decision(0, facts("b", ts=1150), now_ms=0) == "new"
    assert state.closed_until(0) == 0  # 1150 - 200 is still inside window 0
    state.on_decision(0, facts("c", ts=1250), now_ms=0)
    assert state.closed_until(0) == 1000
    assert state.on_decision(0, facts("d", ts=999), now_ms=0) == "late"
    # Other partitions have their own event time.
    assert state.on_decision(1, facts("e", ts=10), now_ms=0) == "new"
    # Closing never goes back.
    assert not state.advance(0, 0)
    assert state.close_idle(1, now_ms=5_000)
    assert state.closed_until(1) == 4000


def test_a_closed_window_is_planned_once_every_decision_is_resolved() -> None:
    state, _ = new_state(size_ms=1000, ttl_ms=500)
    state.on_decision(0, facts("graded", ts=10), now_ms=0)
    state.on_decision(0, facts("waiting", ts=20), now_ms=100)
    state.on_feedback(0, fb("graded", 0.8), now_ms=0)
    state.on_feedback(0, fb("waiting", 0.1, candidate="weak"), now_ms=0)  # a shadow only
    assert state.plan(0, now_ms=200) == []  # window still open
    state.close_idle(0, now_ms=2_000)
    assert state.plan(0, now_ms=200) == []  # "waiting" waits for its grade or the TTL
    (plan,) = state.plan(0, now_ms=600)
    assert (plan.window_start, plan.window_end, plan.late) == (0, 1000, False)
    assert [d for d, _, _ in plan.entries] == ["graded", "waiting"]


def test_late_rows_are_planned_as_they_resolve_after_the_regular_shard() -> None:
    state, _ = new_state(size_ms=1000, ttl_ms=500)
    state.on_decision(0, facts("on-time", ts=10), now_ms=0)
    state.close_idle(0, now_ms=5_000)
    state.on_decision(0, facts("late-graded", ts=20), now_ms=0)
    state.on_decision(0, facts("late-waiting", ts=30), now_ms=400)
    state.on_feedback(0, fb("late-graded", 1.0), now_ms=0)
    regular, late = state.plan(0, now_ms=500)
    assert (regular.late, late.late) == (False, True)
    assert [d for d, _, _ in late.entries] == ["late-graded"]


def test_complete_forgets_rows_and_keeps_feedback_that_arrived_during_the_write() -> None:
    state, (decisions, feedback, _) = new_state(size_ms=1000)
    state.on_decision(0, facts("x", ts=10), now_ms=0)
    state.on_feedback(0, fb("x", 0.3, feedback_id="used"), now_ms=0)
    state.close_idle(0, now_ms=5_000)
    (plan,) = state.plan(0, now_ms=0)
    state.on_feedback(0, fb("x", 0.9, feedback_id="during"), now_ms=1)  # while writing
    state.complete(plan, NOTHING, now_ms=10)
    assert state_key(0, "x") not in decisions
    assert set(feedback[state_key(0, "x")]["f"]) == {"during"}
    assert state.pending(0) == 0
    assert state.waiting_feedback(0) == 1
    # It expires (and is counted) after the orphan TTL (at least a minute).
    assert state.expire_feedback(0, now_ms=59_000) == 0
    assert state.expire_feedback(0, now_ms=70_010) == 1
    assert state_key(0, "x") not in feedback


def test_feedback_floods_are_refused() -> None:
    state, _ = new_state()
    for i in range(MAX_FEEDBACK_PER_DECISION):
        state.on_feedback(0, fb("d", 0.5, feedback_id=str(i)), now_ms=0)
    with pytest.raises(InvalidRecordError, match="feedback records"):
        state.on_feedback(0, fb("d", 0.5), now_ms=0)


def test_retrain_counts_follow_written_shards() -> None:
    store = MemoryStore()
    state, _ = new_state(size_ms=1000, quality_source="outcome")
    sink = ShardSink(store=store, bucket="b", policy=state.policy, clock_ms=lambda: 0)  # type: ignore[arg-type]
    for p in (0, 1):
        for i in range(3):
            state.on_decision(p, facts(f"{p}-{i}", ts=10 + i), now_ms=0)
        state.close_idle(p, now_ms=5_000)
        for plan in state.plan(p, now_ms=0):
            state.complete(plan, sink.write(plan), now_ms=0)
    new = state.unrequested([0, 1])
    assert sorted(new.values()) == [3, 3]
    state.mark_requested([0], list(new))
    assert list(state.unrequested([0, 1])) == [k for k in new if "part-1." in k]
    state.mark_requested([1], list(new))
    assert state.unrequested([0, 1]) == {}


def test_rebuild_from_the_tables_gives_the_same_plans() -> None:
    state, tables = new_state(size_ms=1000, ttl_ms=0)
    for i in range(20):
        state.on_decision(i % 3, facts(f"d{i}", ts=i * 170), now_ms=0)
        if i % 4 == 0:
            state.on_feedback(i % 3, fb(f"d{i}", 0.5), now_ms=0)
    state.on_feedback(2, fb("orphan", 0.5), now_ms=0)
    for p in range(3):
        state.close_idle(p, now_ms=2_500)
    restarted, _ = new_state(size_ms=1000, ttl_ms=0, tables=tables)
    restarted.rebuild(range(3))
    for p in range(3):
        assert restarted.plan(p, now_ms=1) == state.plan(p, now_ms=1)
        assert restarted.pending(p) == state.pending(p)
    assert restarted.waiting_feedback(2) == 1


# ------------------------------------------------------------------ exactly once across crashes


class Changelog:
    """Tables whose changes are appended to one log; a crash keeps any prefix of it."""

    def __init__(self, entries: list[tuple[str, str, Any]] | None = None) -> None:
        self.entries: list[tuple[str, str, Any]] = []
        self.tables = {name: LoggedTable(name, self) for name in ("decisions", "feedback", "meta")}
        for name, key, value in entries or []:
            self.tables[name]._data.pop(key, None) if value is None else self.tables[
                name
            ]._data.__setitem__(key, value)
            self.entries.append((name, key, value))


class LoggedTable(MutableMapping[str, Any]):
    def __init__(self, name: str, log: Changelog) -> None:
        self._name, self._log, self._data = name, log, {}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._log.entries.append((self._name, key, value))

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._log.entries.append((self._name, key, None))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)


class SimulatedWorker:
    """The worker's order of effects: process → tick (flush changelog, write, complete) →
    commit (flush changelog, then offsets), with one crash that keeps a durable prefix."""

    def __init__(self, events, *, partitions, window, lateness, ttl, quality_source) -> None:
        self.events = events
        self.partitions = partitions
        self.policy = LabelPolicy(quality_source=quality_source, ttl_ms=ttl)
        self.windows = WindowSpec(window, lateness)
        self.store = MemoryStore()
        self.sink = ShardSink(store=self.store, bucket="b", policy=self.policy, clock_ms=lambda: 0)  # type: ignore[arg-type]
        self.log = Changelog()
        self.state = self._state()
        self.durable = 0
        self.committed = 0
        self.clock = 0
        self.steps = 0

    def _state(self) -> LabelerState:
        t = self.log.tables
        state = LabelerState(
            decisions=t["decisions"],
            feedback=t["feedback"],
            meta=t["meta"],
            policy=self.policy,
            windows=self.windows,
        )
        state.rebuild(range(self.partitions))
        return state

    def crash(self, keep_fraction: float) -> None:
        """Lose what was not durable: the log beyond some point at or after the last flush,
        the in-memory state, and every uncommitted offset."""
        extra = len(self.log.entries) - self.durable
        keep = self.durable + math.floor(extra * keep_fraction)
        self.log = Changelog(self.log.entries[:keep])
        self.durable = keep
        self.state = self._state()

    def step(self) -> bool:
        self.steps += 1
        return self.steps == self.crash_step

    def tick(self, *, final: bool = False) -> bool:
        for p in range(self.partitions):
            if final:
                self.state.close_idle(p, now_ms=10**12)
            self.state.expire_feedback(p, self.clock)
        plans = [plan for p in range(self.partitions) for plan in self.state.plan(p, self.clock)]
        self.durable = len(self.log.entries)  # producer.flush() before any S3 write
        for plan in plans:
            result = self.sink.write(plan)
            if self.step():
                return True
            self.state.complete(plan, result, now_ms=self.clock)
            if self.step():
                return True
        return False

    def run(self, *, crash_step: int, keep_fraction: float, tick_every: int, commit_every: int):
        self.crash_step = crash_step
        crashed = False
        i = 0
        while i < len(self.events) or not crashed:
            if i >= len(self.events):
                crashed = True
                break
            kind, p, obj = self.events[i]
            self.clock += 7
            if kind == "d":
                self.state.on_decision(p, obj, now_ms=self.clock)
            else:
                self.state.on_feedback(p, obj, now_ms=self.clock)
            i += 1
            hit = self.step()
            if not hit and i % tick_every == 0:
                hit = self.tick()
            if i % commit_every == 0:
                self.durable = len(self.log.entries)
                self.committed = i
            if hit and not crashed:
                crashed = True
                self.crash(keep_fraction)
                i = self.committed
        self.crash_step = -1
        self.clock += 10**6  # every TTL has passed
        while True:
            self.tick(final=True)
            if all(self.state.pending(p) == 0 for p in range(self.partitions)):
                break

    def rows(self) -> list[dict]:
        out = []
        for key in list_manifests(self.store, "b"):  # type: ignore[arg-type]
            parquet = key.replace(".manifest.json", ".parquet")
            out += decode_table(self.store.get_bytes("b", parquet)).cast(SCHEMA).to_pylist()
        return out


@st.composite
def traffic(draw):
    partitions = draw(st.integers(1, 2))
    n = draw(st.integers(1, 24))
    events = []
    graded = set()
    for i in range(n):
        p = draw(st.integers(0, partitions - 1))
        # Mostly advancing event time (windows close as traffic flows), some out of order.
        ts = max(0, i * 150 + draw(st.integers(-700, 300)))
        decision_id = f"d{i}"
        grade_first = draw(st.booleans())
        grades = draw(st.integers(0, 2))
        if grades:
            graded.add(decision_id)
        feedback = [
            ("f", p, fb(decision_id, 0.5, feedback_id=f"{decision_id}-{g}")) for g in range(grades)
        ]
        decision = ("d", p, facts(decision_id, ts=ts))
        events += [*feedback, decision] if grade_first else [decision, *feedback]
    return partitions, events, graded


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    traffic=traffic(),
    crash_step=st.integers(1, 60),
    keep_fraction=st.floats(0, 1),
    tick_every=st.integers(1, 6),
    commit_every=st.integers(1, 30),
    lateness=st.integers(0, 600),
)
def test_every_decision_lands_in_exactly_one_shard_across_a_crash(
    traffic, crash_step, keep_fraction, tick_every, commit_every, lateness
) -> None:
    partitions, events, graded = traffic
    worker = SimulatedWorker(
        events,
        partitions=partitions,
        window=1000,
        lateness=lateness,
        ttl=50,
        quality_source="feedback_or_outcome",
    )
    worker.run(
        crash_step=crash_step,
        keep_fraction=keep_fraction,
        tick_every=tick_every,
        commit_every=commit_every,
    )
    rows = worker.rows()
    ids = [r["decision_id"] for r in rows]
    assert sorted(ids) == sorted({obj.decision_id for kind, _, obj in events if kind == "d"})
    # A graded decision's row is never replaced by a worse-informed one.
    for row in rows:
        if row["decision_id"] in graded and row["feedback_count"]:
            assert row["quality_source"] == "feedback"


def test_a_decision_replayed_after_its_window_was_written_is_not_written_again() -> None:
    # Window 0 is written and forgotten durably, offsets are not committed, the worker dies:
    # the replayed d0 and d1 are "late" now, and must not reach the late shard.
    events = [("d", 0, facts(f"d{i}", ts=ts)) for i, ts in enumerate((0, 100, 2000))]
    worker = SimulatedWorker(
        events, partitions=1, window=1000, lateness=0, ttl=50, quality_source="outcome"
    )
    worker.run(crash_step=5, keep_fraction=1.0, tick_every=3, commit_every=100)
    assert sorted(r["decision_id"] for r in worker.rows()) == ["d0", "d1", "d2"]
    assert not [k for k in worker.store.list_keys("b") if "/late/" in k]
