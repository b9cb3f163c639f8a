"""Fetching bundles into the cache the replicas on one volume share: one download per
version under a renewing Redis lock, written to a temporary folder and renamed into place,
every file checked against the announced manifest's sha256 (``fetch_bundle``, as the trainer
fetches)."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import redis
from routeiq.errors import ArtifactNotFoundError, LockError, StorageError
from routeiq.locks import RenewingLock
from routeiq.routing.bundle import MANIFEST, BundleError, fetch_bundle
from routeiq.storage import ArtifactStore

from routeiq_gateway.errors import SyncError
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.sync.announcements import Announcement

# One logger for model sync, as before the split: operators grep for "routeiq_gateway.sync".
log = logging.getLogger(__package__)


# eq=False: a cache is one object with a folder and a lock, compared by identity.
@dataclass(kw_only=True, eq=False)
class BundleCache:
    """``<cache_dir>/<name>/<version>/``: whole bundles only, fetched once per volume."""

    name: str
    replica_id: str
    store: ArtifactStore
    redis_client: redis.Redis
    cache_dir: Path
    cache_volume: str
    metrics: GatewayMetrics
    lock_ttl_s: float = 30.0
    lock_wait_s: float = 300.0
    redis_retries: int = 3
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.cache_dir / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self._redis = self.metrics.dependencies["redis"]
        self._s3 = self.metrics.dependencies["s3"]

    def folder(self, version: str) -> Path | None:
        """The cached bundle of ``version``, if it is here whole."""
        path = self.root / version
        return path if (path / MANIFEST).is_file() else None

    def versions(self) -> list[str]:
        """Cached versions, oldest first."""
        found = [
            p
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
        ]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def prune(self, *, keep_latest: int, keep: Collection[str | None]) -> None:
        """Drop the oldest versions beyond ``keep_latest``, never one named in ``keep``."""
        versions = self.versions()
        for v in versions[: max(0, len(versions) - keep_latest)]:
            if v not in keep:
                shutil.rmtree(self.root / v, ignore_errors=True)

    def ensure(self, a: Announcement) -> Path:
        """The bundle's folder in the shared cache, downloading it under the lock if needed."""
        target = self.root / a.version
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
        key = f"routeiq:sync:{self.cache_volume}:{self.name}:{version}"
        started = time.monotonic()
        for attempt in range(self.redis_retries + 1):
            try:
                lock = RenewingLock(
                    self.redis_client,
                    key,
                    ttl_s=self.lock_ttl_s,
                    blocking_timeout_s=self.lock_wait_s,
                )
                if not lock.acquire(blocking=False):
                    self.metrics.sync_contention.inc()
                    if not lock.acquire(blocking=True):
                        raise SyncError(f"waited {self.lock_wait_s:.0f}s for {key}", stage="lock")
                self._redis.recovered()
                self.metrics.sync_lock_wait.observe(time.monotonic() - started)
                return lock
            except LockError as exc:
                # Each attempt goes to the dependency's state, which logs the loss once.
                self._redis.failed(f"sync lock {key} (attempt {attempt + 1}): {exc}")
                time.sleep(min(0.2 * 2**attempt, 2.0))
        self.metrics.sync_unlocked.inc()
        log.info(
            "Redis unreachable after %d retries: downloading %s without the lock",
            self.redis_retries,
            version,
        )
        return None

    def _download(self, a: Announcement, target: Path) -> None:
        tmp = self.root / f".tmp-{a.version}-{self.replica_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            total = fetch_bundle(
                self.store,
                bucket=a.bucket,
                prefix=a.prefix,
                dest=tmp,
                manifest_version_id=a.manifest_version_id,
                manifest_sha256=a.manifest_sha256,
            )
        except (StorageError, BundleError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, StorageError) and not isinstance(exc, ArtifactNotFoundError):
                # S3 failing, not a missing object (bytes that do not match are a BundleError):
                # a dependency state, logged once.
                self._s3.failed(exc)
            raise SyncError(f"download of {a.version} failed: {exc}", stage="download") from exc
        self._s3.recovered()
        self.metrics.sync_downloads.inc()
        self.metrics.sync_bytes.inc(total)
        try:
            tmp.rename(target)  # atomic on one filesystem: readers see all or nothing
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # someone else renamed first (no lock)
            if not (target / MANIFEST).is_file():
                raise
        log.info("synced %s/%s (%d bytes) into %s", self.name, a.version, total, target)
