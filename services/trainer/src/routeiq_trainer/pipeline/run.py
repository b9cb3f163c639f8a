"""One retrain request, start to finish, as named steps.

Steps, and what makes each safe to repeat after a crash:

1. Look the request id up in MLflow (version tag). Found → resume after the last finished
   step (gate, alias, announcement), never train again. So a redelivered request, even one
   whose worker died after registering but before committing its offset, creates no second
   version.
2. Load and split the data; score the current champion (its bundle from S3, verified) and a
   random router on the validation rows (``Gatekeeper.score_champion``).
3. Fit every requested router type, a nested MLflow run each (``RouterFitter``); the best on
   the gate metric becomes the challenger (``core.results.pick``).
4. Track: the request's run gets its params, metrics and tags (names in ``core.tags``).
5. Write the signed bundle, upload it to ``models/<name>/<version>/`` (the version name is a
   function of the request, so a retry overwrites its own objects) and log it to MLflow
   (``BundlePublisher``).
6. Register the version (checking the request id once more right before; if two workers ever
   raced, the later registration deletes itself and adopts the earlier one).
7. Gate the challenger against the champion on the same rows, record the verdict on the
   version; if it passed, verify the uploaded bundle as a gateway would, move ``champion``,
   announce and record the announcement id (``Gatekeeper.gate_and_announce``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from routeiq.routing.assessment import Evaluation, random_baseline
from routeiq.routing.bundle import Signer
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.prepare import PreparedData

from routeiq_trainer.announce import PROMOTE
from routeiq_trainer.bundles import BundleStore
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core import results
from routeiq_trainer.core.requests import TrainOptions, TrainRequest, resolve_options
from routeiq_trainer.core.results import Outcome, TypeResult
from routeiq_trainer.core.tags import (
    TAG_ANNOUNCED,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_PREVIOUS,
    TAG_ROUTER_TYPE,
)
from routeiq_trainer.core.versions import VersionInfo
from routeiq_trainer.data import DataLoader
from routeiq_trainer.errors import TrainerError
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.ops import ModelOps
from routeiq_trainer.pipeline.fitting import RouterFitter
from routeiq_trainer.pipeline.gating import Gatekeeper
from routeiq_trainer.pipeline.publishing import BundlePublisher
from routeiq_trainer.tracking import ModelRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baselines:
    """What a challenger is measured against on the request's validation rows."""

    champion: VersionInfo | None
    champion_eval: Evaluation | None
    champion_note: str
    random: Evaluation


class TrainingPipeline:
    """Handles one ``TrainRequest`` at a time (see the module docstring for the steps)."""

    def __init__(
        self,
        *,
        settings: TrainerSettings,
        loader: DataLoader,
        registry: ModelRegistry,
        bundles: BundleStore,
        ops: ModelOps,
        signer: Signer,
        embeddings: FeatureStore,
        metrics: TrainerMetrics | None = None,
        git_commit: str = "unknown",
    ) -> None:
        self._settings = settings
        self._loader = loader
        self._registry = registry
        self._ops = ops
        self._metrics = metrics or TrainerMetrics()
        self._git_commit = git_commit
        self._device = None if settings.device == "auto" else settings.device
        work_dir = settings.cache_dir / "work"
        self._fitter = RouterFitter(
            registry=registry, metrics=self._metrics, work_dir=work_dir, device=self._device
        )
        self._publisher = BundlePublisher(
            registry=registry,
            bundles=bundles,
            signer=signer,
            featurizer=embeddings.featurizer,
            work_dir=work_dir,
        )
        self._gate = Gatekeeper(
            settings=settings, registry=registry, ops=ops, metrics=self._metrics, work_dir=work_dir
        )

    def process(self, request: TrainRequest, *, parent_run_id: str | None = None) -> Outcome:
        """Train, register, gate and (maybe) announce; or resume/skip a known request.

        ``parent_run_id`` is a run someone else opened (``mlflow run``): the request is
        tracked in it and it is left open.
        """
        existing = self._registry.find_by_request(request.model_name, request.request_id)
        if existing:
            return self._resume(request, existing[0])
        options, data, baselines = self._prepare(request)
        logger.info(
            "request %s (%s): %d train / %d validation examples from %s, types %s",
            request.request_id,
            request.model_name,
            len(data.train),
            len(data.validation),
            data.source,
            ",".join(options.router_types),
        )
        return self._train_and_register(
            request, options=options, data=data, baselines=baselines, parent_run_id=parent_run_id
        )

    def deploy(self, request: TrainRequest, ref: str) -> Outcome:
        """Gate the registered version ``ref`` as if it were a new challenger: scored with
        the champion and a random router on the request's validation rows, the verdict
        recorded on the version, announced only if it passed (``promote`` skips the gate)."""
        info = self._registry.get(request.model_name, ref)
        options, data, baselines = self._prepare(request)
        if baselines.champion is not None and baselines.champion.number == info.number:
            raise TrainerError(f"{info.name} {info.version} is already the champion")
        challenger = self._gate.score(info, data, options, label=f"version {info.version}")
        return self._gate_and_announce(request, info, challenger, baselines, status="deployed")

    def _gate_and_announce(
        self,
        request: TrainRequest,
        info: VersionInfo,
        challenger: Evaluation,
        baselines: Baselines,
        *,
        status: str,
    ) -> Outcome:
        return self._gate.gate_and_announce(
            request.request_id,
            info,
            challenger=challenger,
            champion=baselines.champion,
            champion_eval=baselines.champion_eval,
            champion_note=baselines.champion_note,
            baseline=baselines.random,
            status=status,
        )

    def _prepare(self, request: TrainRequest) -> tuple[TrainOptions, PreparedData, Baselines]:
        options = resolve_options(request, self._settings)
        data = self._loader.load(request, options)
        champion = self._registry.champion(request.model_name)
        champion_eval, note = self._gate.score_champion(champion, data, options)
        random = random_baseline(data, seed=options.seed, cost_weight=options.cost_weight)
        return options, data, Baselines(champion, champion_eval, note, random)

    def _train_and_register(
        self,
        request: TrainRequest,
        *,
        options: TrainOptions,
        data: PreparedData,
        baselines: Baselines,
        parent_run_id: str | None,
    ) -> Outcome:
        owned = parent_run_id is None
        run_id, experiment_id = self._open_run(request, parent_run_id)
        try:
            self._registry.log_params(run_id, self._run_params(request, options, data))
            fitted = [
                self._fitter.fit(
                    kind,
                    data=data,
                    options=options,
                    experiment_id=experiment_id,
                    parent_run_id=run_id,
                    version=request.version,
                )
                for kind in options.router_types
            ]
            winner = results.pick(fitted, metric=self._settings.gate_metric)
            info, adopted = self._track_publish_register(
                request,
                run_id=run_id,
                options=options,
                data=data,
                baselines=baselines,
                winner=winner,
                fitted=fitted,
            )
            if adopted:
                # Another attempt registered this request first: finish its version instead.
                if owned:
                    self._registry.end_run(run_id, "KILLED")
                return self._resume(request, info)
            self._metrics.versions.inc()
            if owned:
                self._registry.end_run(run_id)
        except BaseException:
            if owned:
                try:
                    self._registry.end_run(run_id, "FAILED")
                except TrainerError:
                    logger.warning("could not mark run %s failed", run_id)
            raise
        metric = self._settings.gate_metric
        logger.info(
            "registered %s %s as MLflow version %s (%s, %s %.4f)",
            info.name,
            info.version,
            info.number,
            winner.kind,
            metric,
            winner.evaluation.metrics.get(metric, float("nan")),
        )
        return self._gate_and_announce(
            request, info, winner.evaluation, baselines, status="trained"
        )

    def _open_run(self, request: TrainRequest, parent_run_id: str | None) -> tuple[str, str]:
        """The request's run (``parent_run_id`` when given) and its experiment; runs of an
        earlier attempt that died before registering are marked KILLED first."""
        name = request.model_name
        for stale, status in self._registry.runs_for_request(name, request.request_id):
            if status == "RUNNING":
                self._registry.end_run(stale, "KILLED")
        tags = results.request_tags(request)
        if parent_run_id:
            self._registry.set_run_tags(parent_run_id, tags)
            return parent_run_id, self._registry.run_experiment(parent_run_id)
        experiment_id = self._registry.experiment(name)
        run_id = self._registry.start_run(experiment_id, run_name=request.version, tags=tags)
        return run_id, experiment_id

    def _run_params(
        self, request: TrainRequest, options: TrainOptions, data: PreparedData
    ) -> dict[str, object]:
        from routeiq.routing.routers.base import torch_device

        return {
            **options.as_params(),
            **data.summary(),
            "device": torch_device(self._device),
            "git_commit": self._git_commit,
            "model_name": request.model_name,
            "version": request.version,
            "request_id": request.request_id,
            "gate_metric": self._settings.gate_metric,
            "gate_margin": self._settings.gate_margin,
        }

    def _track_publish_register(
        self,
        request: TrainRequest,
        *,
        run_id: str,
        options: TrainOptions,
        data: PreparedData,
        baselines: Baselines,
        winner: TypeResult,
        fitted: list[TypeResult],
    ) -> tuple[VersionInfo, bool]:
        """Record the run's metrics, publish the bundle and register the version. Returns the
        version that holds this request, and whether it is another attempt's (adopted)."""
        name, version = request.model_name, request.version
        run_metrics = results.run_metrics(
            winner, fitted, random=baselines.random, champion=baselines.champion_eval
        )
        self._registry.log_metrics(run_id, run_metrics)
        self._registry.set_run_tags(run_id, {TAG_ROUTER_TYPE: winner.kind})
        challenger = results.Challenger(
            request, options, data, winner, results.summary(run_metrics), self._git_commit
        )
        metric = self._settings.gate_metric
        curves = [r.evaluation for r in fitted]
        if baselines.champion_eval is not None:
            curves.append(baselines.champion_eval)
        curves.append(baselines.random)
        published = self._publisher.publish(
            challenger,
            run_id=run_id,
            curves=curves,
            training=results.bundle_training(
                challenger, gate_metric=metric, trained_at_ms=int(time.time() * 1000)
            ),
        )
        raced = self._registry.find_by_request(name, request.request_id)
        if raced:
            logger.warning("request %s was registered meanwhile; adopting it", version)
            return raced[0], True
        value = challenger.summary.get(metric, float("nan"))
        info = self._registry.register(
            name,
            source=published.source,
            run_id=run_id,
            tags=results.version_tags(
                challenger,
                bundle_json=published.location.to_json(),
                signature=published.signature,
            ),
            description=f"{winner.kind} router {version} from {data.source}; {metric} {value:.4f}",
        )
        earliest = self._earliest(request, info)
        return earliest, earliest.number != info.number

    def _earliest(self, request: TrainRequest, info: VersionInfo) -> VersionInfo:
        """If another worker registered the same request too, the earliest version wins and
        the later registration (``info``) is deleted."""
        found = self._registry.find_by_request(info.name, request.request_id)
        if found and found[0].number != info.number:
            logger.warning(
                "request %s registered twice (versions %s); deleting %s",
                request.request_id,
                [v.number for v in found],
                info.number,
            )
            self._registry.delete_version(info.name, info.number)
            return found[0]
        return info

    def _resume(self, request: TrainRequest, info: VersionInfo) -> Outcome:
        """Finish whatever a previous attempt at this request left undone."""
        tags = info.tags
        gate = tags.get(TAG_GATE)
        if TAG_ANNOUNCED in tags or gate == "held":
            logger.info(
                "request %s is %s %s already (gate %s): nothing to do",
                request.request_id,
                info.name,
                info.version,
                gate,
            )
            return Outcome(request.request_id, info, status="duplicate")
        if gate == "passed":
            previous = tags.get(TAG_PREVIOUS) or None
            current = self._registry.champion(info.name)
            if current is not None and current.version not in {info.version, previous}:
                # Another version became champion since this one passed: announcing this one
                # now would silently undo that.
                self._registry.set_tags(info.name, info.number, {TAG_ANNOUNCED: "superseded"})
                return Outcome(request.request_id, info, status="duplicate")
            announced = self._ops.announce(
                info,
                action=PROMOTE,
                previous=previous,
                reason=tags.get(TAG_GATE_REASON, "gate passed"),
            )
            return Outcome(
                request.request_id, info, status="resumed", announcement=announced.record
            )
        # Registered, but the gate never ran: score the stored bundle as the challenger.
        options, data, baselines = self._prepare(request)
        challenger = self._gate.score(info, data, options, label=info.router_type)
        return self._gate_and_announce(request, info, challenger, baselines, status="resumed")
