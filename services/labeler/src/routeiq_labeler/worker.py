"""The labeler's worker: changelog-backed tables, the agent and the tick.

One agent reads decisions and feedback (raw bytes; each record is decoded here, so a poison
record is dead-lettered alone, by ``routeiq_labeler.poison``). A timer ("tick") closes windows
of idle partitions, writes due shards, expires orphan feedback, asks for retraining and
measures lag; another ("probe") checks that Kafka answers. All logic is in ``core``; this
module only moves records and time into it and results out of it. Kafka, S3 and the registry
are ``routeiq.dependencies``: a lost one is logged once and shown on ``/health/ready``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.types import TP
from mode.supervisors import CrashingSupervisor
from routeiq.dependencies import Dependencies
from routeiq.labeling import DecisionFacts, LabelPolicy
from routeiq.storage import ArtifactStore

from routeiq_labeler.app import Serdes, partitioned_tables, source_topic
from routeiq_labeler.config import LabelerSettings
from routeiq_labeler.core.state import FlushPlan, LabelerState
from routeiq_labeler.core.windows import WindowSpec
from routeiq_labeler.errors import InvalidRecordError
from routeiq_labeler.metrics import LabelerMetrics
from routeiq_labeler.poison import (
    RECORD_ERRORS,
    Backoff,
    PoisonPolicy,
    record_facts,
    registry_outage,
)
from routeiq_labeler.retraining import RetrainRequester
from routeiq_labeler.sink import S3_ERRORS, ShardSink

logger = logging.getLogger("routeiq_labeler")

SERVICE = "routeiq-labeler"
# What the worker needs to make progress: records and dead letters (Kafka), shards (S3), the
# writers' schemas (the registry).
DEPENDENCIES = ("kafka", "s3", "registry")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class LabelerWorker:
    """Wires the core into a Faust app: tables, the agent, the tick, health."""

    def __init__(
        self,
        *,
        settings: LabelerSettings,
        app: faust.App,
        store: ArtifactStore,
        serdes: Serdes,
        metrics: LabelerMetrics,
        poison: PoisonPolicy,
        dependencies: Dependencies,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.app = app
        self.metrics = metrics
        self.poison = poison
        self.dependencies = dependencies
        for name in DEPENDENCIES:
            _ = dependencies[name]  # each one on /health/ready and in the gauge from the start
        self._serdes = serdes
        self._clock_ms = clock_ms
        policy = LabelPolicy(
            quality_source=settings.quality_source,
            cost_weight=settings.cost_weight,
            latency_slo_ms=settings.outcome_latency_slo_ms,
            slow_success_quality=settings.slow_success_quality,
            ttl_ms=settings.ttl_ms,
            oracle=settings.oracle(),
        )
        tables = partitioned_tables(app, ("decisions", "feedback", "meta"))
        self.state = LabelerState(
            decisions=tables["decisions"],
            feedback=tables["feedback"],
            meta=tables["meta"],
            policy=policy,
            windows=WindowSpec(settings.window_ms, settings.lateness_ms),
            track_new_shards=settings.retrain_enabled,
        )
        self.sink = ShardSink(
            store=store, bucket=settings.shards_bucket, policy=policy, clock_ms=clock_ms
        )
        self._source = source_topic(app, settings.decisions_topic, settings.feedback_topic)
        self.retrainer = RetrainRequester(
            settings=settings,
            store=store,
            app=app,
            topic=app.topic(settings.retrain_topic, key_serializer="raw", value_serializer="raw"),
            serde=serdes.retrain,
            metrics=metrics,
            requested_by=poison.consumer,
            s3=dependencies["s3"],
            clock_ms=clock_ms,
        )
        self._assigned = False
        self._generation = 0
        self._built_generation = -1
        self._last_decision_at: dict[int, int] = {}
        self._last_offsets: dict[tuple[str, int], int] = {}
        self._lag: dict[tuple[str, int], int] = {}
        # Source partitions held now (None before the first assignment).
        self._held: set[TP] | None = None
        # A crash of the agent is a crash of the worker: a record that is neither processed
        # nor dead-lettered must not be skipped by an agent restart.
        app.agent(self._source, name="label", supervisor_strategy=CrashingSupervisor)(self._process)
        app.timer(settings.tick_interval_s, name="tick")(self.tick)
        app.timer(settings.kafka_probe_interval_s, name="probe")(self.probe)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_partitions_revoked.connect(self._on_revoked)

    # ------------------------------------------------------------------ status

    @property
    def ready(self) -> bool:
        """Assigned, rebalanced and every table recovered from its changelog."""
        app = self.app
        return bool(
            self._assigned
            and not app.rebalancing
            and not app.in_recovery
            and cast(Any, app.tables).recovery.completed.is_set()
        )

    def owned_partitions(self) -> list[int]:
        return sorted(
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.settings.decisions_topic
        )

    def status(self) -> dict[str, Any]:
        """What ``/health/ready`` reports."""
        parts = self.owned_partitions() if self._assigned else []
        return {
            "ready": self.ready,
            "app_id": self.settings.app_id,
            "partitions": parts,
            "pending": sum(self.state.pending(p) for p in parts),
            "closed_until": {str(p): self.state.closed_until(p) for p in parts},
            "lag": {f"{t}[{p}]": lag for (t, p), lag in sorted(self._lag.items())},
            # Readiness is the worker's own (a lost dependency stops progress, not the
            # process): "degraded" names what is lost, and the dependencies say since when.
            "state": "ok" if self.dependencies.ready else "degraded",
            "dependencies": self.dependencies.states(),
        }

    async def _on_assigned(
        self, sender: Any, /, assigned: Any = (), *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        # Another replica may have dead-lettered records of a partition that is new here
        # without committing past them: what this consumer wrote is read again (in the
        # background; dead letters wait for it, other records need not). The first
        # assignment is covered by the recall before the worker started.
        sources = {self.settings.decisions_topic, self.settings.feedback_topic}
        held = {tp for tp in assigned if tp.topic in sources}
        if self._held is not None and held - self._held:
            self.poison.recall_later()
        self._held = held
        self._assigned = True
        self._generation += 1

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self._generation += 1
        # Positions and idleness restart with the next assignment (replays come first).
        self._last_offsets.clear()
        self._last_decision_at.clear()
        self._lag.clear()

    # ------------------------------------------------------------------ records

    async def _process(self, stream: Any) -> None:
        async for event in stream.events():
            await self.handle(event.message)

    async def handle(self, message: Any) -> None:
        """Decode, validate and apply one record; dead-letter it if it is poison."""
        topic, partition = message.topic, message.partition
        kind = "decision" if topic == self.settings.decisions_topic else "feedback"
        self.metrics.events_in.labels(kind).inc()
        self._last_offsets[(topic, partition)] = message.offset
        now = self._clock_ms()
        if kind == "decision":
            self._last_decision_at[partition] = now
        try:
            facts = await self._facts(message, is_decision=kind == "decision", now=now)
        except RECORD_ERRORS as exc:
            await self.poison.dead_letter(message, kind, exc)
            return
        try:
            if isinstance(facts, DecisionFacts):
                outcome: str = self.state.on_decision(partition, facts, now_ms=now)
                if outcome == "late":
                    self.metrics.late.inc()
            else:
                outcome = self.state.on_feedback(partition, facts, now_ms=now)
        except InvalidRecordError as exc:
            # Feedback beyond the per-decision limit, refused before anything changed.
            await self.poison.dead_letter(message, kind, exc)
            return
        if outcome == "duplicate":
            self.metrics.duplicates.labels(kind).inc()

    async def _facts(self, message: Any, *, is_decision: bool, now: int) -> Any:
        """The record's facts; while the registry is away, waits for it (the record is not
        to blame, and skipping it would lose it)."""
        registry = self.dependencies["registry"]
        backoff = Backoff()
        while True:
            try:
                facts = record_facts(
                    self._serdes,
                    is_decision=is_decision,
                    key=message.key,
                    value=message.value,
                    now_ms=now,
                    max_future_skew_ms=round(self.settings.max_future_skew_s * 1000),
                )
            except RECORD_ERRORS as exc:
                if not registry_outage(exc):
                    registry.recovered()  # it answered (or was not needed): the record is bad
                    raise
                registry.failed(exc)
                await backoff.wait()
                continue
            registry.recovered()
            return facts

    async def probe(self) -> None:
        """Whether Kafka answers, for ``/health/ready``, the gauge and one log line per change."""
        await asyncio.to_thread(self.poison.probe)

    # ------------------------------------------------------------------ the tick

    async def tick(self) -> None:
        """Close idle windows, write due shards, expire feedback, maybe retrain, measure lag."""
        if not self.ready:
            return
        now = self._clock_ms()
        parts = self.owned_partitions()
        if self._built_generation != self._generation:
            self.state.rebuild(parts)
            for p in parts:
                # Idleness counts from when this process got the partition, not from the
                # last event before a restart: replays must not find their windows closed.
                self._last_decision_at.setdefault(p, now)
            self._built_generation = self._generation
        for p in parts:
            if self._idle(p, now):
                self.state.close_idle(p, now)
            dropped = self.state.expire_feedback(p, now)
            if dropped:
                self.metrics.feedback_unmatched.inc(dropped)
            self.metrics.closed_until.labels(str(p)).set(self.state.closed_until(p) / 1000)
        await self._flush(parts)
        if self.settings.retrain_enabled:
            await self._maybe_retrain(parts)
        await self._measure_lag(parts)
        self.metrics.pending.set(sum(self.state.pending(p) for p in parts))

    def _idle(self, partition: int, now: int) -> bool:
        last = self._last_decision_at.get(partition)
        if last is None or now - last < self.settings.idle_ms:
            return False
        return self._lag.get((self.settings.decisions_topic, partition)) == 0

    async def _flush(self, parts: list[int]) -> None:
        now = self._clock_ms()
        plans = [plan for p in parts for plan in self.state.plan(p, now)]
        if not plans:
            return
        # What justifies these writes (closed windows, buffered rows) is in the changelog
        # before the shards are in S3: a restart never finds a shard its state cannot explain.
        await self.app.producer.flush()
        generation = self._generation
        loop = asyncio.get_running_loop()
        s3 = self.dependencies["s3"]
        for plan in plans:
            started = time.perf_counter()
            try:
                result = await loop.run_in_executor(None, self.sink.write, plan)
            except S3_ERRORS as exc:
                # Retried at the next tick; logged once per outage, not once per tick.
                self.metrics.shard_write_errors.inc()
                s3.failed(f"cannot write {_name(plan)}: {exc}")
                return
            s3.recovered()
            self.metrics.flush_seconds.observe(time.perf_counter() - started)
            if generation != self._generation:
                # A rebalance happened during the write: whoever owns the partition now
                # writes it again (a merge, so nothing doubles).
                return
            self.state.complete(plan, result, now_ms=self._clock_ms())
            kind = "late" if plan.late else "regular"
            if result.duplicates:
                self.metrics.late_replays.inc(result.duplicates)
            for source, n in result.by_source.items():
                self.metrics.labeled.labels(source).inc(n)
            if result.manifest is not None:
                self.metrics.shards_written.labels(kind).inc()
                self.metrics.shard_rows.labels(kind).inc(result.added_rows)
                logger.info(
                    "wrote %s (%d rows, %d new)",
                    result.manifest.key,
                    result.manifest.rows,
                    result.added_rows,
                )

    async def _maybe_retrain(self, parts: list[int]) -> None:
        new = self.state.unrequested(parts)
        generation = self._generation
        requested = await self.retrainer.maybe_request(new)
        if requested and generation == self._generation:
            # After a rebalance the partitions' counts belong to their new owner.
            self.state.mark_requested(parts, new)

    async def _measure_lag(self, parts: list[int]) -> None:
        consumer = self.app.consumer
        for topic in (self.settings.decisions_topic, self.settings.feedback_topic):
            for p in parts:
                tp = TP(topic, p)
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                last = self._last_offsets.get((topic, p))
                if last is not None:
                    position = last + 1
                else:
                    try:
                        fetched = await consumer.position(tp)
                    except KafkaError:
                        # Revoked since the assignment was read: measured next tick.
                        continue
                    if fetched is None:
                        continue
                    position = fetched
                lag = max(int(highwater) - position, 0)
                self._lag[(topic, p)] = lag
                self.metrics.consumer_lag.labels(topic, str(p)).set(lag)


def _name(plan: FlushPlan) -> str:
    kind = "late " if plan.late else ""
    return f"{kind}window {plan.window_start} partition {plan.partition} ({plan.size} rows)"
