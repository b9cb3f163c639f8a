"""Activating router versions on this replica: verify, probe and hot-swap an announced or
cached bundle, keep the history for rollback, and report every change to the audit trail."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
from confluent_kafka import Consumer
from numpy.typing import NDArray
from routeiq.contracts.serde import AvroSerde
from routeiq.deadletters import DeadLetterSink
from routeiq.routing.bundle import (
    BundleError,
    LoadedBundle,
    Verifier,
    load_bundle,
    read_signature,
    run_probes,
)
from routeiq.routing.featurizer import Featurizer
from routeiq.routing.strategies import BundleHolder

from routeiq_gateway.errors import SyncError
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.sync.announcements import Announcement, AnnouncementReader
from routeiq_gateway.sync.audit import AuditTrail
from routeiq_gateway.sync.bundle_cache import BundleCache

# One logger for model sync, as before the split: operators grep for "routeiq_gateway.sync".
log = logging.getLogger(__package__)

# (the bundle's pipeline, texts) → vectors, through the gateway's cached serving path.
Featurize = Callable[[Featurizer, Sequence[str]], NDArray[np.float32]]


# eq=False: compared by identity; it owns a reader thread and an activation lock.
@dataclass(kw_only=True, eq=False)
class ModelSync:
    """Follows one router's announcements and keeps this replica on the announced version."""

    name: str
    replica_id: str
    # The announcements' source and where its poison records go: handed to the reader, not
    # kept here.
    consumer: InitVar[Consumer]
    topic: InitVar[str]
    serde: InitVar[AvroSerde]
    dead_letters: InitVar[DeadLetterSink]
    recall_reader: InitVar[Callable[[], Consumer]]
    cache: BundleCache
    verifier: Verifier
    holder: BundleHolder
    featurize: Featurize
    metrics: GatewayMetrics
    audit: AuditTrail
    keep_versions: int = 5

    def __post_init__(
        self,
        consumer: Consumer,
        topic: str,
        serde: AvroSerde,
        dead_letters: DeadLetterSink,
        recall_reader: Callable[[], Consumer],
    ) -> None:
        self._activate_lock = threading.Lock()
        self._history: list[str] = []  # versions activated here, oldest first
        self._last: dict[str, Any] = {"result": "none yet"}
        self._reader = AnnouncementReader(
            name=self.name,
            consumer=consumer,
            topic=topic,
            serde=serde,
            apply=self.apply,
            dead_letters=dead_letters,
            recall_reader=recall_reader,
            dependencies=self.metrics.dependencies,
            on_poison=self._poison,
        )

    # ------------------------------------------------------------ status and lifecycle

    @property
    def active_version(self) -> str | None:
        bundle = self.holder.get()
        return bundle.version if bundle is not None else None

    def status(self) -> dict[str, Any]:
        return {
            "router_name": self.name,
            "active_version": self.active_version,
            "history": list(self._history),
            "available_versions": self.cache.versions(),
            "caught_up": self._reader.caught_up.is_set(),
            "last": dict(self._last),
        }

    def start(self) -> None:
        self._reader.start()

    def stop(self) -> None:
        self._reader.stop()

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self._reader.caught_up.wait(timeout_s)

    def _poison(self, exc: Exception) -> None:
        self.metrics.dead_letters.inc()
        self.metrics.sync_failures.labels("decode").inc()
        self._last = {"result": "failed", "stage": "decode", "reason": str(exc)}

    # ------------------------------------------------------------ sync + activate

    def apply(self, announcement: Announcement) -> bool:
        """Sync and activate an announced version; False (and reported) on any failure."""
        who = f"announcement by {announcement.announced_by}"
        if announcement.version == self.active_version:
            return True
        try:
            folder = self.cache.ensure(announcement)
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
        self.metrics.sync_failures.labels(exc.stage).inc()
        self.metrics.activations.labels("rejected").inc()
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

    def _verified(
        self,
        folder: Path,
        version: str,
        *,
        expected_manifest_sha256: str | None,
        announced_signature: dict[str, str] | None,
    ) -> tuple[LoadedBundle, float]:
        """The bundle in ``folder``, verified and probed, and the probes' worst difference."""
        try:
            signed = read_signature(folder)
            if announced_signature is not None and signed != announced_signature:
                raise BundleError("the announced signature is not the bundle's")
            bundle = load_bundle(
                folder, self.verifier, expected_manifest_sha256=expected_manifest_sha256
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
            worst = run_probes(bundle, lambda texts: self.featurize(bundle.featurizer, texts))
        except BundleError as exc:
            raise SyncError(str(exc), stage="probe") from exc
        return bundle, worst

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
            bundle, worst = self._verified(
                folder,
                version,
                expected_manifest_sha256=expected_manifest_sha256,
                announced_signature=announced_signature,
            )
            previous = self.active_version
            swapped_at = time.time()
            old = self.holder.swap(bundle, at=swapped_at)
            if old is not None:
                self.metrics.router_version.remove(
                    old.manifest.name, old.version, old.manifest.router_type
                )
                # A router with a worker process stops it now, not when collected (requests
                # still holding the old bundle fall back through RouterUnavailable).
                old.router.close()
            self.metrics.router_version.labels(self.name, version, bundle.manifest.router_type).set(
                1
            )
            if previous is not None and (not self._history or self._history[-1] != previous):
                self._history.append(previous)
            self._history.append(version)
            self.metrics.activations.labels(
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
            self.cache.prune(
                keep_latest=self.keep_versions,
                keep=set(self._history[-self.keep_versions :]) | {self.active_version},
            )
            return bundle

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
        folder = self.cache.folder(target)
        if folder is None:
            raise SyncError(
                f"version {target} is not in the local cache (available: {self.cache.versions()})",
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
        """``rollback_sync`` off the event loop (verification and probes take a while)."""
        return await anyio.to_thread.run_sync(
            lambda: self.rollback_sync(version, who=who, reason=reason)
        )
