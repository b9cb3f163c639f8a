"""The registry's state kept in step with its log: replay, serialized writes, readiness.

Writes are serialized by one writer lock. A write first reads the log to its end (so records
written by anyone else are applied), decides against the current state, appends its records and
returns only after reading them back and applying them: a read right after a write sees it, and
the state never holds anything the log does not. Reads take the state lock briefly.

This assumes one writer of the topic (Confluent elects one primary for the same reason): two
registries writing the same topic at once could give two schemas one id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from routeiq.dependencies import Dependency
from routeiq.errors import TransportError

from routeiq_schema_registry.core import records as rec
from routeiq_schema_registry.core.log import SchemaLog
from routeiq_schema_registry.core.state import RegistryState
from routeiq_schema_registry.errors import NotReadyError, StoreTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Records = list[tuple[bytes, bytes | None]]

# How long one read of the log may wait; deadlines are checked between reads.
_READ_SLICE_S = 0.5


# eq=False: one replica per log, compared by identity.
@dataclass(kw_only=True, eq=False)
class LogReplica:
    """A ``RegistryState`` that only changes by applying what was read back from ``log``.

    ``state`` may be read under ``lock``; it is changed only here.
    """

    log: SchemaLog
    write_timeout_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    # Whether the log answers (logged once when lost, reminded at most every minute, logged
    # once when back); every failed or successful call to it updates this.
    log_health: Dependency = field(default_factory=lambda: Dependency(name="log", log=logger))
    state: RegistryState = field(init=False, default_factory=RegistryState)
    lock: threading.RLock = field(init=False, repr=False, default_factory=threading.RLock)
    _write_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _ready: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _replay_target: int | None = field(init=False, default=None)
    _closed: threading.Event = field(init=False, repr=False, default_factory=threading.Event)

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, timeout_s: float = 60.0, retry_interval_s: float = 1.0) -> None:
        """Prepare the log and replay it to its end; then the replica is ready.

        The end is found by appending a NOOP record and reading up to it (Confluent does the
        same). Transport failures (Kafka still starting) are retried until ``timeout_s``.
        """
        deadline = self.clock() + timeout_s
        while True:
            try:
                with self._write_lock:
                    self.log.prepare(max(0.1, deadline - self.clock()))
                    offset = self.log.append(
                        rec.NOOP_KEY, None, timeout_s=max(0.1, deadline - self.clock())
                    )
                    self._replay_target = offset + 1
                    self._catch_up(offset + 1, deadline)
                break
            except TransportError as exc:
                # One warning when the log is found missing, then a reminder at most a minute.
                self.log_health.failed(exc)
                if self.clock() + retry_interval_s >= deadline:
                    raise
                self.sleep(retry_interval_s)
        self.log_health.recovered()
        self._ready.set()
        with self.lock:
            logger.info(
                "replayed the log up to offset %d: %d subjects, largest id %d",
                self.state.next_offset,
                len(self.state.subjects()),
                self.state.max_id,
            )

    @property
    def ready(self) -> bool:
        """True once the log has been replayed to its end."""
        return self._ready.is_set()

    def progress(self) -> dict[str, Any]:
        """How far the replay is (applied offset and target), whether the log answers, and how
        many records were skipped as unreadable (``poison``) or foreign."""
        with self.lock:
            return {
                "ready": self.ready,
                "applied_offset": self.state.next_offset,
                "replay_target": self._replay_target,
                "dependencies": {self.log_health.name: self.log_health.state()},
                "records": {"poison": self.state.poison, "skipped": self.state.skipped},
            }

    def watch(self, *, interval_s: float = 5.0) -> None:
        """Ask the log for its end every ``interval_s`` until ``close``, so that a lost (or
        returned) log shows in ``progress`` even while no write comes in."""
        while not self._closed.wait(interval_s):
            try:
                self.log.end_offset(timeout_s=interval_s)
            except TransportError as exc:
                self.log_health.failed(exc)
            else:
                self.log_health.recovered()

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data."""
        with self.lock:
            return self.state.snapshot()

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Close the log once no write or replay uses it; give up (and leave it to process exit)
        if one is still running after ``timeout_s``: librdkafka must not be closed under a call."""
        self._closed.set()
        if self._write_lock.acquire(timeout=timeout_s):
            try:
                self.log.close()
            finally:
                self._write_lock.release()
        else:
            logger.warning("a write or the replay is still running; not closing the log")

    def require_ready(self) -> None:
        """Refuse (503 / 50003) until the log has been replayed to its end."""
        if not self.ready:
            progress = self.progress()
            raise NotReadyError(
                "the registry is still replaying its log (applied up to offset "
                f"{progress['applied_offset']} of {progress['replay_target']}); retry shortly"
            )

    # ------------------------------------------------------------------ writing

    def writing(self, decide: Callable[[float], T]) -> T:
        """Run a write under the writer lock: catch up with the log, then ``decide(deadline)``,
        which checks the request against the state and calls ``write``."""
        self.require_ready()
        deadline = self.clock() + self.write_timeout_s
        with self._write_lock:
            try:
                end = self.log.end_offset(timeout_s=max(0.1, deadline - self.clock()))
                self._catch_up(end, deadline)
                result = decide(deadline)
            except TransportError as exc:
                self.log_health.failed(exc)
                raise
            self.log_health.recovered()
            return result

    def write(self, records: Records, deadline: float) -> None:
        """Append records (in order) and apply them; only ``decide`` (under the writer lock)
        calls this."""
        last = -1
        for key, value in records:
            last = self.log.append(key, value, timeout_s=max(0.1, deadline - self.clock()))
        if last >= 0:
            self._catch_up(last + 1, deadline)

    def _catch_up(self, target: int, deadline: float) -> None:
        """Read and apply the log until everything before ``target`` is applied."""
        while self.state.next_offset < target:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise StoreTimeoutError(
                    f"the log was read up to offset {self.state.next_offset}, not {target}, "
                    "in the time allowed"
                )
            batch = self.log.read(self.state.next_offset, timeout_s=min(remaining, _READ_SLICE_S))
            with self.lock:
                for record in batch.records:
                    if record.offset >= self.state.next_offset:
                        self.state.apply(record)
                self.state.advance_to(batch.next_offset)
