"""Model rollout on a gateway: follow announcements, sync bundles under a Redis lock into a
cache shared by the replicas on one volume, verify, probe and hot-swap; roll back on demand.

* Every replica reads ``routeiq.model.announcements.v1`` from the beginning with no consumer
  group offsets (it assigns the single partition itself), so each sees every announcement and
  a starting replica learns the current model from the compacted log.
* Sync: the lock ``routeiq:sync:<volume>:<name>:<version>`` (renewed while held) lets one
  replica per volume download; it writes into a temporary folder and renames it into place,
  so a reader sees a whole bundle or none. The others wait, then find it cached. A holder that
  dies stops renewing, the lock expires and a waiter takes over. Redis unreachable: a few
  retries, then the download goes ahead without the lock (counted): serving never waits on
  Redis.
* Activate: verify signature and every sha256 → load → run the bundle's probe queries through
  this replica's feature pipeline → swap the router reference. Requests already routing keep
  the router they read. Any failure keeps the current router and is reported.
* Every activation, rejection and rollback goes to the audit trail: a local JSON-lines file and,
  best effort, a capped Redis stream shared by the fleet (``routeiq model audit``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from numpy.typing import NDArray
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import LockError, RouteIQError, StorageError
from routeiq.locks import RenewingLock
from routeiq.routing.bundle import (
    MANIFEST,
    SIGNATURE,
    BundleError,
    LoadedBundle,
    Manifest,
    Verifier,
    load_bundle,
    read_signature,
    run_probes,
)
from routeiq.routing.featurizer import Featurizer
from routeiq.routing.strategies import BundleHolder
from routeiq.storage import ArtifactStore

from routeiq_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

AUDIT_STREAM = "routeiq:audit:{name}"


class SyncError(RouteIQError):
    """A bundle could not be synced or activated; the current router keeps serving."""

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True)
class Announcement:
    """The parts of a ``ModelAnnouncement`` the gateway acts on."""

    model_name: str
    version: str
    action: str
    router_type: str
    bucket: str
    prefix: str
    manifest_sha256: str
    manifest_version_id: str | None
    signature: dict[str, str]
    announced_by: str
    reason: str | None

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Announcement:
        b = r["bundle"]
        return cls(
            model_name=r["model_name"],
            version=r["version"],
            action=r["action"],
            router_type=r["router_type"],
            bucket=b["bucket"],
            prefix=b["prefix"].rstrip("/"),
            manifest_sha256=b["manifest_sha256"],
            manifest_version_id=b.get("manifest_version_id"),
            signature={k: str(r["signature"][k]) for k in ("algorithm", "key_id", "value")},
            announced_by=r["announced_by"],
            reason=r.get("reason"),
        )


class AuditTrail:
    """Append-only record of who changed which router, when, from what, to what and why."""

    def __init__(
        self, path: Path, *, redis_client: redis.Redis | None, name: str | None, replica: str
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._redis = redis_client
        self._stream = AUDIT_STREAM.format(name=name or "default")
        self._replica = replica
        self._lock = threading.Lock()

    def write(
        self,
        *,
        action: str,
        who: str,
        from_version: str | None,
        to_version: str | None,
        why: str,
        at: float | None = None,
    ) -> dict[str, Any]:
        """Record one change; ``at`` is when it took effect (default: now)."""
        when = time.time() if at is None else at
        entry = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
            "at_ms": int(when * 1000),
            "replica": self._replica,
            "action": action,
            "who": who,
            "from": from_version,
            "to": to_version,
            "why": why,
        }
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        if self._redis is not None:
            try:
                self._redis.xadd(
                    self._stream, {"entry": json.dumps(entry)}, maxlen=10_000, approximate=True
                )
            except redis.RedisError as exc:
                log.warning("audit entry kept locally only (Redis: %s)", exc)
        return entry

    def tail(self, limit: int = 100) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in lines if line.strip()]


# (the bundle's pipeline, texts) → vectors, through the gateway's cached serving path.
Featurize = Callable[[Featurizer, Sequence[str]], NDArray[np.float32]]


class ModelSync:
    def __init__(
        self,
        *,
        name: str,
        replica_id: str,
        consumer: Consumer,
        topic: str,
        serde: AvroSerde,
        store: ArtifactStore,
        redis_client: redis.Redis,
        cache_dir: Path,
        cache_volume: str,
        verifier: Verifier,
        holder: BundleHolder,
        featurize: Featurize,
        metrics: GatewayMetrics,
        audit: AuditTrail,
        lock_ttl_s: float = 30.0,
        lock_wait_s: float = 300.0,
        redis_retries: int = 3,
        keep_versions: int = 5,
    ) -> None:
        self.name = name
        self.replica_id = replica_id
        self._consumer = consumer
        self._topic = topic
        self._serde = serde
        self._store = store
        self._redis = redis_client
        self.cache_root = cache_dir / name
        self.cache_root.mkdir(parents=True, exist_ok=True)
        self._volume = cache_volume
        self._verifier = verifier
        self.holder = holder
        self._featurize = featurize
        self._metrics = metrics
        self.audit = audit
        self._lock_ttl_s = lock_ttl_s
        self._lock_wait_s = lock_wait_s
        self._redis_retries = redis_retries
        self._keep = keep_versions
        self._activate_lock = threading.Lock()
        self._history: list[str] = []  # versions activated here, oldest first
        self._last: dict[str, Any] = {"result": "none yet"}
        self._latest_seen: Announcement | None = None
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ status

    @property
    def active_version(self) -> str | None:
        bundle = self.holder.get()
        return bundle.version if bundle is not None else None

    def cached_versions(self) -> list[str]:
        found = [
            p
            for p in self.cache_root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
        ]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def status(self) -> dict[str, Any]:
        return {
            "router_name": self.name,
            "active_version": self.active_version,
            "history": list(self._history),
            "available_versions": self.cached_versions(),
            "caught_up": self._caught_up.is_set(),
            "last": dict(self._last),
        }

    # ------------------------------------------------------------ background consumer

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(RuntimeError):  # already closed
            self._consumer.close()

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self._caught_up.wait(timeout_s)

    def _run(self) -> None:
        # No group offsets: every replica reads the whole compacted log from the beginning.
        self._consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        while not self._stop.is_set():
            try:
                msg = self._consumer.poll(0.5)
            except RuntimeError:
                return
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._on_caught_up()
                else:
                    log.warning("announcement consumer: %s", err)
                continue
            try:
                record = self._serde.decode(msg.value())
                announcement = Announcement.from_record(record)
            except (RouteIQError, KeyError, TypeError) as exc:
                self._metrics.sync_failures.labels("decode").inc()
                self._last = {"result": "failed", "stage": "decode", "reason": str(exc)}
                log.error("undecodable announcement at offset %s: %s", msg.offset(), exc)
                continue
            if announcement.model_name != self.name:
                continue
            if self._caught_up.is_set():
                self.apply(announcement)
            else:
                # Replaying history: only the latest announcement matters.
                self._latest_seen = announcement

    def _on_caught_up(self) -> None:
        if self._caught_up.is_set():
            return
        if self._latest_seen is not None:
            self.apply(self._latest_seen)
        self._caught_up.set()

    # ------------------------------------------------------------ sync + activate

    def apply(self, announcement: Announcement) -> bool:
        """Sync and activate an announced version; False (and reported) on any failure."""
        who = f"announcement by {announcement.announced_by}"
        if announcement.version == self.active_version:
            return True
        try:
            folder = self.ensure_cached(announcement)
            self._activate(
                folder,
                announcement.version,
                action="activate",
                who=who,
                why=announcement.reason or announcement.action.lower(),
                expected_manifest_sha256=announcement.manifest_sha256,
                announced_signature=announcement.signature,
            )
            return True
        except SyncError as exc:
            self._reject(announcement.version, exc, who=who)
            return False

    def _reject(self, version: str, exc: SyncError, *, who: str) -> None:
        self._metrics.sync_failures.labels(exc.stage).inc()
        self._metrics.activations.labels("rejected").inc()
        self._last = {
            "result": "rejected",
            "version": version,
            "stage": exc.stage,
            "reason": str(exc),
            "at": time.time(),
        }
        self.audit.write(
            action="reject",
            who=who,
            from_version=self.active_version,
            to_version=version,
            why=f"{exc.stage}: {exc}",
        )
        log.error(
            "version %s rejected at %s: %s; keeping %s",
            version,
            exc.stage,
            exc,
            self.active_version,
        )

    def ensure_cached(self, a: Announcement) -> Path:
        """The bundle's folder in the shared cache, downloading it under the lock if needed."""
        target = self.cache_root / a.version
        if (target / MANIFEST).is_file():
            return target
        lock = self._take_lock(a.version)
        try:
            if (target / MANIFEST).is_file():
                return target  # the holder we waited for finished the job
            self._download(a, target)
            return target
        finally:
            if lock is not None:
                try:
                    lock.release()
                except LockError as exc:
                    log.warning("releasing the sync lock: %s", exc)

    def _take_lock(self, version: str) -> RenewingLock | None:
        key = f"routeiq:sync:{self._volume}:{self.name}:{version}"
        started = time.monotonic()
        for attempt in range(self._redis_retries + 1):
            try:
                lock = RenewingLock(
                    self._redis, key, ttl_s=self._lock_ttl_s, blocking_timeout_s=self._lock_wait_s
                )
                if not lock.acquire(blocking=False):
                    self._metrics.sync_contention.inc()
                    if not lock.acquire(blocking=True):
                        raise SyncError(f"waited {self._lock_wait_s:.0f}s for {key}", stage="lock")
                self._metrics.sync_lock_wait.observe(time.monotonic() - started)
                return lock
            except LockError as exc:
                delay = min(0.2 * 2**attempt, 2.0)
                log.warning("Redis lock %s unavailable (attempt %d): %s", key, attempt + 1, exc)
                time.sleep(delay)
        self._metrics.sync_unlocked.inc()
        log.warning(
            "Redis unreachable after %d retries: downloading %s without the lock",
            self._redis_retries,
            version,
        )
        return None

    def _download(self, a: Announcement, target: Path) -> None:
        tmp = self.cache_root / f".tmp-{a.version}-{self.replica_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            manifest_path = tmp / MANIFEST
            total = self._store.download_to(
                a.bucket,
                f"{a.prefix}/{MANIFEST}",
                manifest_path,
                version_id=a.manifest_version_id,
                expected_sha256=a.manifest_sha256,
            )
            manifest = Manifest.from_bytes(manifest_path.read_bytes())
            total += self._store.download_to(a.bucket, f"{a.prefix}/{SIGNATURE}", tmp / SIGNATURE)
            for name, info in manifest.files.items():
                total += self._store.download_to(
                    a.bucket, f"{a.prefix}/{name}", tmp / name, expected_sha256=str(info["sha256"])
                )
        except (StorageError, BundleError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SyncError(f"download of {a.version} failed: {exc}", stage="download") from exc
        self._metrics.sync_downloads.inc()
        self._metrics.sync_bytes.inc(total)
        try:
            tmp.rename(target)  # atomic on one filesystem: readers see all or nothing
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # someone else renamed first (no lock)
            if not (target / MANIFEST).is_file():
                raise
        log.info("synced %s/%s (%d bytes) into %s", self.name, a.version, total, target)

    def _activate(
        self,
        folder: Path,
        version: str,
        *,
        action: str,
        who: str,
        why: str,
        expected_manifest_sha256: str | None = None,
        announced_signature: dict[str, str] | None = None,
    ) -> LoadedBundle:
        with self._activate_lock:
            try:
                signed = read_signature(folder)
                if announced_signature is not None and signed != announced_signature:
                    raise BundleError("the announced signature is not the bundle's")
                bundle = load_bundle(
                    folder, self._verifier, expected_manifest_sha256=expected_manifest_sha256
                )
            except BundleError as exc:
                raise SyncError(str(exc), stage="verify") from exc
            if bundle.manifest.name != self.name or bundle.version != version:
                raise SyncError(
                    f"bundle is {bundle.manifest.name}/{bundle.version}, expected "
                    f"{self.name}/{version}",
                    stage="verify",
                )
            try:
                # The probes run through the serving path (cache included), not a fresh copy.
                worst = run_probes(bundle, lambda texts: self._featurize(bundle.featurizer, texts))
            except BundleError as exc:
                raise SyncError(str(exc), stage="probe") from exc
            previous = self.active_version
            swapped_at = time.time()
            old = self.holder.swap(bundle, at=swapped_at)
            if old is not None:
                self._metrics.router_version.remove(
                    old.manifest.name, old.version, old.manifest.router_type
                )
            self._metrics.router_version.labels(
                self.name, version, bundle.manifest.router_type
            ).set(1)
            if previous is not None and (not self._history or self._history[-1] != previous):
                self._history.append(previous)
            self._history.append(version)
            self._metrics.activations.labels(
                "rolled_back" if action == "rollback" else "activated"
            ).inc()
            self._last = {
                "result": {"activate": "activated"}.get(action, "rolled_back"),
                "version": version,
                "from": previous,
                "probe_max_diff": worst,
                "at": time.time(),
            }
            self.audit.write(
                action=action,
                who=who,
                from_version=previous,
                to_version=version,
                why=why,
                at=swapped_at,
            )
            log.info("%s %s/%s (was %s)", action, self.name, version, previous)
            self._prune()
            return bundle

    def _prune(self) -> None:
        keep = set(self._history[-self._keep :]) | {self.active_version}
        versions = self.cached_versions()
        for v in versions[: max(0, len(versions) - self._keep)]:
            if v not in keep:
                shutil.rmtree(self.cache_root / v, ignore_errors=True)

    # ------------------------------------------------------------ rollback

    def rollback_target(self, version: str) -> str:
        if version == "previous":
            current = self.active_version
            earlier = [v for v in self._history if v != current]
            if not earlier:
                raise SyncError("no earlier version was active on this replica", stage="rollback")
            return earlier[-1]
        return version

    def rollback_sync(self, version: str, *, who: str, reason: str | None = None) -> dict[str, Any]:
        target = self.rollback_target(version)
        folder = self.cache_root / target
        if not (folder / MANIFEST).is_file():
            raise SyncError(
                f"version {target} is not in the local cache (available: {self.cached_versions()})",
                stage="rollback",
            )
        previous = self.active_version
        try:
            self._activate(
                folder, target, action="rollback", who=who, why=reason or f"rollback to {version}"
            )
        except SyncError as exc:
            self._reject(target, exc, who=who)
            raise
        return {"rolled_back_from": previous, "active_version": target}

    async def rollback(
        self, version: str, *, who: str, reason: str | None = None
    ) -> dict[str, Any]:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(
            lambda: self.rollback_sync(version, who=who, reason=reason)
        )
