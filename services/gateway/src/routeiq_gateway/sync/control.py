"""The fleet's routing configuration on the control topic: every replica serves the latest
version, and any replica's admin API can write the next one.

* Reading: ``ControlReader`` follows the compacted topic ``routeiq.routing.config.v1`` like
  model announcements (whole log from the beginning, latest version once caught up, then
  each new one; poison records dead-lettered). A version is the whole configuration on top
  of the model file, so applying it is ``rebuild`` on a fresh engine then ``adopt``: the
  result depends on that version alone, whatever this replica applied before. A version this
  replica cannot serve (a plugin missing here) is refused with the reason, counted and shown
  on ``/admin/router``, and the replica keeps serving the version it had.
* Writing: under the fleet's Redis lock (one writer at a time, so versions are 1, 2, 3, ...
  with none lost), a replica that has read the log up to the last version written merges the
  change into it, validates the result by building it, and writes it in one Kafka
  transaction to the control topic and to the audit topic (``…audit.v1``, kept for good).
  An invalid change is a ``ConfigError`` and never reaches Kafka. The writer then waits
  (bounded) for its own reader to apply the version, so the answer shows it in force.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from redis.exceptions import RedisError
from routeiq.contracts.records import RoutingConfigChange
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import ConfigError, ContractError, RouteIQError
from routeiq.routing.admin import merge_change, rebuild
from routeiq.routing.engine import RoutingEngine

from routeiq_gateway.errors import ControlUnavailable
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.sync.logreader import CompactedLogReader

log = logging.getLogger(__package__)


@dataclass(kw_only=True, eq=False)
class ControlReader(CompactedLogReader[RoutingConfigChange]):
    """The fleet's configuration versions (the topic may carry other fleets' too)."""

    fleet: str

    def parse(self, record: dict[str, Any]) -> RoutingConfigChange:
        return RoutingConfigChange.from_record(record)

    def wanted(self, item: RoutingConfigChange) -> bool:
        return item.fleet == self.fleet


@dataclass(frozen=True)
class ControlTopics:
    """Where versions go: the compacted topic replicas follow and the audit topic, with the
    serde each is registered under."""

    control: str
    audit: str
    control_serde: AvroSerde
    audit_serde: AvroSerde


# eq=False: compared by identity; it owns the version state and its condition.
@dataclass(kw_only=True, eq=False)
class ControlPlane:
    """This replica's side of the fleet's routing configuration."""

    fleet: str
    replica_id: str
    engine: RoutingEngine
    # The model file's engine, built fresh: every version is applied on top of it.
    base: Callable[[], RoutingEngine]
    topics: ControlTopics
    # A transactional producer (its ``transactional.id`` is this replica's own).
    producer: Producer
    # A fresh consumer on each call, for reading the audit topic.
    audit_consumer: Callable[[], Consumer]
    redis_client: redis.Redis
    metrics: GatewayMetrics
    # Set by the reader once it has read the log to its end.
    caught_up: threading.Event
    wait_s: float = 5.0
    lock_ttl_s: float = 30.0

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._latest: RoutingConfigChange | None = None  # the fleet's newest version seen
        self._applied: RoutingConfigChange | None = None  # the newest applied here
        self._refused: dict[str, Any] | None = None
        self._transactions_ready = False
        self.reader: ControlReader | None = None  # set by the builder (it calls ``apply``)
        self._versions = self.metrics.counter(
            "routeiq_gateway_control_versions_total",
            "Routing configuration versions read from the control topic, applied or refused",
            "result",
        )

    # ------------------------------------------------------------------ reading

    def start(self, *, wait_s: float) -> None:
        """Start reading; wait up to ``wait_s`` for the log's end, so the fleet's version
        serves from the first request when Kafka answers (else it applies when read)."""
        if self.reader is None:
            raise ConfigError("the control plane has no reader")
        self.reader.start()
        if not self.caught_up.wait(wait_s):
            log.warning("control topic not read yet: serving the model file's routing")

    def stop(self) -> None:
        if self.reader is not None:
            self.reader.stop()

    def apply(self, change: RoutingConfigChange) -> None:
        """The reader's callback: serve ``change`` (a newer version) or say why not."""
        with self._changed:
            if self._latest is not None and change.version <= self._latest.version:
                log.warning(
                    "control: version %d after %d ignored", change.version, self._latest.version
                )
                self._changed.notify_all()
                return
            self._latest = change
            try:
                self.engine.adopt(rebuild(self.base, change.config))
            except RouteIQError as exc:
                self._refused = {"version": change.version, "reason": str(exc)}
                self._versions.labels(result="refused").inc()
                log.error("control: version %d cannot be served here: %s", change.version, exc)
            else:
                self._applied, self._refused = change, None
                self._versions.labels(result="applied").inc()
                log.info(
                    "control: version %d applied (%s by %s: %s)",
                    *(change.version, change.action.lower(), change.author, change.reason),
                )
            self._changed.notify_all()

    @property
    def version(self) -> int:
        """The version this replica serves (0: the model file's configuration)."""
        return self._applied.version if self._applied is not None else 0

    def status(self) -> dict[str, Any]:
        latest, applied = self._latest, self._applied
        return {
            "fleet": self.fleet,
            "version": self.version,
            "latest_version": latest.version if latest is not None else 0,
            "applied": applied.describe() if applied is not None else None,
            "refused": self._refused,
        }

    def _wait_for(self, version: int, *, applied: bool) -> bool:
        def reached() -> bool:
            seen = self._applied if applied else self._latest
            return version <= 0 or (seen is not None and seen.version >= version)

        with self._changed:
            return self._changed.wait_for(reached, timeout=self.wait_s)

    # ------------------------------------------------------------------ writing

    def change(self, body: Mapping[str, Any], *, author: str, reason: str | None) -> dict[str, Any]:
        """Write ``body`` (a strategy change) as the fleet's next version; blocking."""

        def build(latest: RoutingConfigChange | None) -> tuple[dict[str, Any], dict[str, Any]]:
            return merge_change(latest.config if latest is not None else {}, body), dict(body)

        return self._commit("UPDATE", build, author=author, reason=reason)

    def rollback(self, to: int | str, *, author: str, reason: str | None) -> dict[str, Any]:
        """Write the configuration of version ``to`` (or the one before the latest,
        ``"previous"``; 0 is the model file's) as the fleet's next version; blocking."""
        target: list[int] = []

        def build(latest: RoutingConfigChange | None) -> tuple[dict[str, Any], dict[str, Any]]:
            newest = latest.version if latest is not None else 0
            version = newest - 1 if to == "previous" else int(to)
            if not 0 <= version < newest:
                raise ConfigError(f"no version {to!r} to roll back to; the latest is {newest}")
            target.append(version)
            if version == 0:
                return {}, {}
            for entry in self.history(limit=None):
                if entry.version == version:
                    return dict(entry.config), {}
            raise ConfigError(f"version {version} is not in the audit topic")

        return self._commit(
            "ROLLBACK", build, author=author, reason=reason, rollback_to=lambda: target[0]
        )

    def _commit(
        self,
        action: str,
        build: Callable[[RoutingConfigChange | None], tuple[dict[str, Any], dict[str, Any]]],
        *,
        author: str,
        reason: str | None,
        rollback_to: Callable[[], int] | None = None,
    ) -> dict[str, Any]:
        lock = self.redis_client.lock(
            f"{self._redis_prefix}:write",
            timeout=self.lock_ttl_s,
            blocking_timeout=self.wait_s,
            thread_local=False,
        )
        try:
            if not lock.acquire():
                raise ControlUnavailable("another configuration change is being written; retry")
        except RedisError as exc:
            raise ControlUnavailable(f"the fleet's write lock (Redis): {exc}") from exc
        try:
            record = self._next(action, build, author=author, reason=reason, rollback=rollback_to)
            self._write(record)
            self._written(record.version)
        finally:
            try:
                lock.release()
            except RedisError as exc:  # expired or Redis gone: it expires on its own
                log.warning("control: releasing the write lock: %s", exc)
        if not self._wait_for(record.version, applied=False):
            raise ControlUnavailable(
                f"version {record.version} is written but not read back yet; see /admin/router"
            )
        return {"written": record.describe(), **self.status()}

    def _next(
        self,
        action: str,
        build: Callable[[RoutingConfigChange | None], tuple[dict[str, Any], dict[str, Any]]],
        *,
        author: str,
        reason: str | None,
        rollback: Callable[[], int] | None,
    ) -> RoutingConfigChange:
        """The next version, built on the last one written (read back first), validated."""
        if not self.caught_up.wait(self.wait_s):
            raise ControlUnavailable("this replica has not read the control topic yet; retry")
        try:
            written = int(self.redis_client.get(self._counter) or 0)
        except RedisError as exc:
            raise ControlUnavailable(f"the fleet's version counter (Redis): {exc}") from exc
        # A version another replica wrote may still be on its way here: build on it, not on
        # the one before (that would lose its change).
        if not self._wait_for(written, applied=False):
            raise ControlUnavailable(f"this replica has not read version {written} yet; retry")
        latest = self._latest
        config, change = build(latest)
        rebuild(self.base, config)  # ConfigError: refused here, never written
        record = RoutingConfigChange(
            change_id=str(uuid.uuid4()),
            fleet=self.fleet,
            version=(latest.version if latest is not None else 0) + 1,
            action=action,
            config=config,
            change=change,
            author=author,
            written_by=self.replica_id,
            changed_at_ms=int(time.time() * 1000),
            reason=reason,
            rollback_to=rollback() if rollback is not None else None,
        )
        return record

    @property
    def _redis_prefix(self) -> str:
        # Per topic and fleet: clusters (or tests) sharing one Redis never share a counter.
        return f"routeiq:control:{self.topics.control}:{self.fleet}"

    @property
    def _counter(self) -> str:
        return f"{self._redis_prefix}:version"

    def _written(self, version: int) -> None:
        """Tell the next writer which version to wait for. Best effort: the version is in
        Kafka already, and a writer that misses it still waits for the reader to catch up."""
        try:
            self.redis_client.set(self._counter, version)
        except RedisError as exc:
            log.warning("control: version counter not updated to %d: %s", version, exc)

    def _write(self, record: RoutingConfigChange) -> None:
        """Both topics in one transaction: the audit never lists a version the fleet never
        saw, nor misses one it did."""
        value = record.to_record()
        try:
            if not self._transactions_ready:
                self.producer.init_transactions(self.wait_s)
                self._transactions_ready = True
            self.producer.begin_transaction()
            for topic, serde in (
                (self.topics.control, self.topics.control_serde),
                (self.topics.audit, self.topics.audit_serde),
            ):
                self.producer.produce(topic, key=record.kafka_key, value=serde.encode(value))
            self.producer.commit_transaction(self.wait_s)
        except KafkaException as exc:
            self._abort()
            raise ControlUnavailable(f"writing version {record.version} to Kafka: {exc}") from exc

    def _abort(self) -> None:
        try:
            self.producer.abort_transaction(self.wait_s)
        except KafkaException as exc:  # not begun, or fenced: start afresh next time
            log.warning("control: aborting the transaction: %s", exc)
            self._transactions_ready = False

    # ------------------------------------------------------------------ audit

    def history(self, *, limit: int | None) -> list[RoutingConfigChange]:
        """The fleet's versions from the audit topic, oldest first (the newest ``limit``)."""
        consumer = self.audit_consumer()
        entries: list[RoutingConfigChange] = []
        try:
            consumer.assign([TopicPartition(self.topics.audit, 0, OFFSET_BEGINNING)])
            deadline = time.monotonic() + self.wait_s * 2
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        break
                    raise ControlUnavailable(f"reading the audit topic: {err}")
                try:
                    entry = RoutingConfigChange.from_record(
                        self.topics.audit_serde.decode(msg.value())
                    )
                except ContractError as exc:
                    log.warning("control: audit record @%s unreadable: %s", msg.offset(), exc)
                    continue
                if entry.fleet == self.fleet:
                    entries.append(entry)
            else:
                raise ControlUnavailable("the audit topic was not read to its end in time")
        finally:
            consumer.close()
        return entries if limit is None else entries[-limit:]
