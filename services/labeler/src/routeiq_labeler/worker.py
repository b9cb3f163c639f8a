"""The labeler's worker: changelog-backed tables, the agent and the tick.

One agent reads decisions and feedback (raw bytes; each record is decoded here, so a poison
record is dead-lettered alone). A timer ("tick") closes windows of idle partitions, writes due
shards, expires orphan feedback, asks for retraining and measures lag. All logic is in
``core``; this module only moves records and time into it and results out of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from confluent_kafka.schema_registry.error import SchemaRegistryError
from faust.types import TP
from mode.supervisors import CrashingSupervisor
from routeiq.errors import SerializationError
from routeiq.storage import ArtifactStore

from routeiq_labeler.app import Serdes, faust_dead_letter, partitioned_tables
from routeiq_labeler.config import LabelerSettings
from routeiq_labeler.core.labels import LabelPolicy
from routeiq_labeler.core.records import decision_facts, feedback_facts
from routeiq_labeler.core.state import FlushPlan, LabelerState
from routeiq_labeler.core.windows import WindowSpec
from routeiq_labeler.errors import InvalidRecordError
from routeiq_labeler.metrics import LabelerMetrics
from routeiq_labeler.retraining import RetrainRequester
from routeiq_labeler.sink import S3_ERRORS, ShardSink

logger = logging.getLogger("routeiq_labeler")

SERVICE = "routeiq-labeler"


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
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.app = app
        self.metrics = metrics
        self._serdes = serdes
        self._clock_ms = clock_ms
        self._consumer_name = f"{SERVICE}/{settings.app_id}"
        policy = LabelPolicy(
            quality_source=settings.quality_source,
            cost_weight=settings.cost_weight,
            latency_slo_ms=settings.outcome_latency_slo_ms,
            slow_success_quality=settings.slow_success_quality,
            ttl_ms=settings.ttl_ms,
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
        self._source = app.topic(
            settings.decisions_topic,
            settings.feedback_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self._deadletters = app.topic(
            settings.deadletter_topic, key_serializer="raw", value_serializer="raw"
        )
        self.retrainer = RetrainRequester(
            settings=settings,
            store=store,
            app=app,
            topic=app.topic(settings.retrain_topic, key_serializer="raw", value_serializer="raw"),
            serde=serdes.retrain,
            metrics=metrics,
            requested_by=self._consumer_name,
            clock_ms=clock_ms,
        )
        self._assigned = False
        self._generation = 0
        self._built_generation = -1
        self._last_decision_at: dict[int, int] = {}
        self._last_offsets: dict[tuple[str, int], int] = {}
        self._lag: dict[tuple[str, int], int] = {}
        # A crash of the agent is a crash of the worker: a record that is neither processed
        # nor dead-lettered must not be skipped by an agent restart.
        app.agent(self._source, name="label", supervisor_strategy=CrashingSupervisor)(self._process)
        app.timer(settings.tick_interval_s, name="tick")(self.tick)
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
        }

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
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
        try:
            if kind == "decision":
                self._last_decision_at[partition] = now
                facts = decision_facts(
                    self._serdes.decisions.decode(message.value),
                    key=message.key,
                    now_ms=now,
                    max_future_skew_ms=round(self.settings.max_future_skew_s * 1000),
                )
                outcome: str = self.state.on_decision(partition, facts, now_ms=now)
                if outcome == "late":
                    self.metrics.late.inc()
            else:
                fb = feedback_facts(self._serdes.feedback.decode(message.value), key=message.key)
                outcome = self.state.on_feedback(partition, fb, now_ms=now)
            if outcome == "duplicate":
                self.metrics.duplicates.labels(kind).inc()
        except (SerializationError, InvalidRecordError) as exc:
            if _transient(exc):
                # The registry is down, not the record bad: stop, and retry after restart.
                raise
            await self._dead_letter(message, kind, exc)

    async def _dead_letter(self, message: Any, kind: str, exc: BaseException) -> None:
        letter = faust_dead_letter(
            message, exc, consumer=self._consumer_name, now_ms=self._clock_ms()
        )
        await self._deadletters.send(
            key=letter.kafka_key, value=self._serdes.deadletter.encode(letter.to_record())
        )
        self.metrics.dead_lettered.labels(kind, type(exc).__name__).inc()
        logger.warning(
            "dead-lettered %s[%d]@%d: %s: %s",
            message.topic,
            message.partition,
            message.offset,
            type(exc).__name__,
            exc,
        )

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
        for plan in plans:
            started = time.perf_counter()
            try:
                result = await loop.run_in_executor(None, self.sink.write, plan)
            except S3_ERRORS as exc:
                self.metrics.shard_write_errors.inc()
                logger.warning("cannot write %s; retrying at the next tick: %s", _name(plan), exc)
                return
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


def _transient(exc: BaseException) -> bool:
    """A registry outage surfaces as a SerializationError too; it says nothing about the record."""
    cause = exc.__cause__
    if isinstance(cause, SchemaRegistryError):
        status = cause.http_status_code
        return status is None or status < 0 or status >= 500
    return False


def _name(plan: FlushPlan) -> str:
    kind = "late " if plan.late else ""
    return f"{kind}window {plan.window_start} partition {plan.partition} ({plan.size} rows)"
