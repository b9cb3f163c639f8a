"""Step "upload bundle": plot the curves, write the signed bundle, put it in S3 and in MLflow.

The bundle's S3 prefix is a function of the request (``models/<name>/<version>/``), so a retry
overwrites its own objects rather than leaving a second copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routeiq.routing.assessment import Evaluation
from routeiq.routing.bundle import SIGNATURE, Signer, write_bundle
from routeiq.routing.featurizer import Featurizer
from routeiq.routing.plots import plot_cost_quality, plot_strong_weak

from routeiq_trainer.bundles import BundleLocation, BundleStore, scratch_dir
from routeiq_trainer.core.results import Challenger, candidates
from routeiq_trainer.tracking import ModelRegistry


@dataclass(frozen=True)
class Published:
    """Where the challenger's bundle went and how it was signed."""

    location: BundleLocation
    signature: dict[str, Any]
    source: str  # the MLflow artifact URI the version is registered from


@dataclass(frozen=True, kw_only=True)
class BundlePublisher:
    """Writes, signs and uploads the challenger's bundle; logs plots and bundle to the run."""

    registry: ModelRegistry
    bundles: BundleStore
    signer: Signer
    featurizer: Featurizer
    work_dir: Path

    def publish(
        self,
        challenger: Challenger,
        *,
        run_id: str,
        curves: list[Evaluation],
        training: dict[str, Any],
    ) -> Published:
        """Plot ``curves`` on the run, then write, upload and log the challenger's bundle."""
        name, version = challenger.request.model_name, challenger.request.version
        winner, data = challenger.winner, challenger.data
        with scratch_dir(self.work_dir) as tmp:
            title = f"{name} {version} (validation)"
            png = plot_strong_weak(curves, tmp / "curve.png", title=title)
            self.registry.log_artifact(run_id, png, "plots")
            if winner.evaluation.multi is not None:
                png = plot_cost_quality(curves, tmp / "cost-quality.png", title=title)
                self.registry.log_artifact(run_id, png, "plots")
            folder = tmp / "bundle"
            write_bundle(
                winner.router,
                folder,
                name=name,
                version=version,
                candidates=candidates(data),
                signer=self.signer,
                featurizer=self.featurizer,
                metrics=challenger.summary,
                calibration={
                    **winner.evaluation.calibration(),
                    "strong": data.strong,
                    "weak": data.weak,
                },
                training=training,
            )
            signature = json.loads((folder / SIGNATURE).read_text())
            location = self.bundles.upload(folder, name=name, version=version)
            self.registry.log_artifacts(run_id, folder, "bundle")
        return Published(location, signature, self.registry.artifact_uri(run_id, "bundle"))
