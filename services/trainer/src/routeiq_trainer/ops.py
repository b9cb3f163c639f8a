"""Champion operations shared by the worker, the MLproject entry points and the CLI.

Every announcement is preceded by the same check a gateway will make: download the bundle
from S3, verify signature and hashes, load it and run its probe queries. A bundle that fails
is never announced; the error names the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routeiq.routing.bundle import BundleError, LoadedBundle, Verifier, run_probes

from routeiq_trainer.announce import PROMOTE, ROLLBACK, Announcer
from routeiq_trainer.bundles import BundleLocation, BundleStore, scratch_dir
from routeiq_trainer.core.tags import TAG_ANNOUNCED
from routeiq_trainer.core.versions import VersionInfo
from routeiq_trainer.errors import TrainerError
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.tracking import ModelRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Announced:
    """What an operation announced."""

    record: dict[str, Any]
    version: VersionInfo
    previous: str | None


@dataclass(frozen=True, kw_only=True, eq=False)
class ModelOps:
    """Verify, promote and roll back registered router versions."""

    registry: ModelRegistry
    bundles: BundleStore
    announcer: Announcer
    verifier: Verifier
    work_dir: Path
    metrics: TrainerMetrics | None = None

    def location(self, info: VersionInfo) -> BundleLocation:
        raw = info.bundle
        if not raw:
            raise BundleError(f"{info.name} version {info.number} records no bundle location")
        return BundleLocation.from_mapping(raw)

    def load(self, info: VersionInfo, dest: Path, *, probes: bool = True) -> LoadedBundle:
        """Download and verify ``info``'s bundle into ``dest`` (and run its probes)."""
        bundle = self.bundles.load(self.location(info), dest, self.verifier)
        if bundle.manifest.version != info.version or bundle.manifest.name != info.name:
            raise BundleError(
                f"bundle at {self.location(info).prefix} is {bundle.manifest.name} "
                f"{bundle.manifest.version}, registered as {info.name} {info.version}"
            )
        if probes:
            run_probes(bundle)
        return bundle

    def verify(self, info: VersionInfo) -> None:
        """Raise ``BundleError`` (with the reason) unless the stored bundle is intact."""
        with scratch_dir(self.work_dir) as tmp:
            self.load(info, tmp / "bundle")

    def announce(
        self,
        info: VersionInfo,
        *,
        action: str,
        previous: str | None,
        reason: str,
        announced_by: str | None = None,
        rollback: bool = False,
    ) -> Announced:
        """Verify, move the alias, announce, then record the announcement on the version."""
        self.verify(info)
        self.registry.set_champion(info, rollback=rollback)
        record = self.announcer.announce(
            model_name=info.name,
            version=info.version,
            action=action,
            router_type=info.router_type,
            bundle=self.location(info),
            signature=info.signature,
            metrics=info.metrics,
            previous_version=previous,
            mlflow_run_id=info.run_id,
            mlflow_model_version=info.number,
            reason=reason,
            announced_by=announced_by,
        )
        self.registry.set_tags(info.name, info.number, {TAG_ANNOUNCED: record["announcement_id"]})
        if self.metrics is not None:
            self.metrics.announcements.labels(action).inc()
        logger.info(
            "announced %s %s %s (mlflow version %s): %s",
            action,
            info.name,
            info.version,
            info.number,
            reason,
        )
        return Announced(record, info, previous)

    def promote(self, name: str, ref: str, *, by: str, reason: str | None = None) -> Announced:
        """Force ``ref`` (bundle version or MLflow number) to champion and announce it."""
        info = self.registry.get(name, ref)
        current = self.registry.champion(name)
        return self.announce(
            info,
            action=PROMOTE,
            previous=current.version if current else None,
            reason=reason or f"promoted by {by} (gate bypassed)",
            announced_by=by,
        )

    def rollback(self, name: str, ref: str | None = None, *, by: str) -> Announced:
        """Announce ROLLBACK to ``ref``, or to the champion before the current one."""
        current = self.registry.champion(name)
        history = self.registry.champion_history(name)
        current_is_last = current is not None and bool(history) and history[-1] == current.version
        if ref is None:
            earlier = history[:-1] if current_is_last else history
            if not earlier:
                raise TrainerError(
                    f"{name} has no earlier champion to roll back to (history: {history})"
                )
            ref = earlier[-1]
        info = self.registry.get(name, ref)
        if current is not None and info.number == current.number:
            raise TrainerError(f"{name} {info.version} is already the champion")
        return self.announce(
            info,
            action=ROLLBACK,
            previous=current.version if current else None,
            reason=f"rolled back by {by}",
            announced_by=by,
            rollback=current_is_last,
        )
