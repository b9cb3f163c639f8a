"""One retrain request, start to finish: data → routers → evaluation → bundle → MLflow → gate.

Steps, and what makes each safe to repeat after a crash:

1. Look the request id up in MLflow (version tag). Found → resume after the last finished
   step (gate, alias, announcement), never train again. So a redelivered request, even one
   whose worker died after registering but before committing its offset, creates no second
   version.
2. Load and split the data; score the current champion (its bundle from S3, verified) and a
   random router on the validation rows.
3. Train every requested router type (a nested MLflow run each); the best on the gate metric
   becomes the challenger.
4. Write the signed bundle, upload it to ``models/<name>/<version>/`` (the version name is a
   function of the request, so a retry overwrites its own objects) and log it to MLflow.
5. Register the version (checking the request id once more right before; if two workers ever
   raced, the later registration deletes itself and adopts the earlier one).
6. Gate: challenger against champion on the same rows; record the verdict on the version.
7. If it passed: verify the uploaded bundle as a gateway would, move ``champion``, announce,
   record the announcement id.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routeiq.routing.assessment import (
    Evaluation,
    IncomparableError,
    evaluate,
    predict,
    random_baseline,
)
from routeiq.routing.bundle import SIGNATURE, Candidate, Signer, write_bundle
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.plots import plot_cost_quality, plot_strong_weak
from routeiq.routing.routers import FitContext, Router, RouterError, router_class

from routeiq_trainer.config import GATE_METRICS, TrainerSettings
from routeiq_trainer.core.announce import PROMOTE
from routeiq_trainer.core.bundles import BundleStore
from routeiq_trainer.core.data import DataLoader, PreparedData
from routeiq_trainer.core.gate import GateDecision, decide, improvement
from routeiq_trainer.core.ops import ModelOps
from routeiq_trainer.core.requests import TrainOptions, TrainRequest, resolve_options
from routeiq_trainer.core.tracking import (
    TAG_ANNOUNCED,
    TAG_BUNDLE,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_METRICS,
    TAG_PREVIOUS,
    TAG_REQUEST_ID,
    TAG_REQUEST_KEY,
    TAG_ROUTER_TYPE,
    TAG_SIGNATURE,
    TAG_VERSION,
    ModelRegistry,
    VersionInfo,
    request_key,
)
from routeiq_trainer.errors import RequestError, TrainerError
from routeiq_trainer.metrics import TrainerMetrics

logger = logging.getLogger(__name__)

# Metrics copied into the version's tag (what `routeiq model list` and announcements show).
SUMMARY_METRICS = (
    "apgr",
    "aiq",
    "quality_at_50pct_cost",
    "best_single_quality",
    "oracle_quality",
    "cpt50",
    "cpt80",
    "auc",
    "best_model_accuracy",
    "mean_cost_usd",
    "policy_quality",
    "ope_ips",
    "ope_snips",
    "validation_rows",
    "train_seconds",
)


@dataclass
class TypeResult:
    """One trained router type and how it did."""

    kind: str
    router: Router
    evaluation: Evaluation
    info: dict[str, Any]
    seconds: float
    run_id: str


@dataclass(frozen=True)
class Outcome:
    """What handling a request did."""

    request_id: str
    model_name: str
    version: str
    status: str  # trained | resumed | duplicate
    mlflow_version: str | None = None
    run_id: str | None = None
    router_type: str | None = None
    gate: GateDecision | None = None
    announcement: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def announced(self) -> bool:
        return self.announcement is not None


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
        self._bundles = bundles
        self._ops = ops
        self._signer = signer
        self._embeddings = embeddings
        self._metrics = metrics or TrainerMetrics()
        self._git_commit = git_commit
        self._work_dir = settings.cache_dir / "work"
        self._fit_device = None if settings.device == "auto" else settings.device

    # ------------------------------------------------------------ entry

    def process(self, request: TrainRequest, *, parent_run_id: str | None = None) -> Outcome:
        """Train, register, gate and (maybe) announce; or resume/skip a known request."""
        existing = self._registry.find_by_request(request.model_name, request.request_id)
        if existing:
            return self._resume(request, existing[0])
        options = resolve_options(request, self._settings)
        data = self._loader.load(request, options)
        logger.info(
            "request %s (%s): %d train / %d validation examples from %s, types %s",
            request.request_id,
            request.model_name,
            len(data.train),
            len(data.validation),
            data.source,
            ",".join(options.router_types),
        )
        champion = self._registry.champion(request.model_name)
        champion_eval, champion_note = self._score_champion(champion, data, options)
        baseline = random_baseline(data, seed=options.seed, cost_weight=options.cost_weight)
        return self._train_and_register(
            request,
            options,
            data,
            champion,
            champion_eval,
            champion_note,
            baseline,
            parent_run_id,
        )

    # ------------------------------------------------------------ training

    def _train_and_register(
        self,
        request: TrainRequest,
        options: TrainOptions,
        data: PreparedData,
        champion: VersionInfo | None,
        champion_eval: Evaluation | None,
        champion_note: str,
        baseline: Evaluation,
        parent_run_id: str | None,
    ) -> Outcome:
        name, version = request.model_name, request.version
        experiment_id = (
            self._registry.run_experiment(parent_run_id)
            if parent_run_id
            else self._registry.experiment(name)
        )
        request_tags = {
            TAG_REQUEST_KEY: request_key(request.request_id),
            TAG_REQUEST_ID: request.request_id[:5000],
            TAG_VERSION: version,
            "routeiq.model_name": name,
            "routeiq.reason": request.reason,
            "routeiq.requested_by": request.requested_by[:5000],
        }
        self._close_stale_runs(name, request.request_id)
        if parent_run_id:
            run_id = parent_run_id
            self._registry.set_run_tags(run_id, request_tags)
        else:
            run_id = self._registry.start_run(experiment_id, run_name=version, tags=request_tags)
        try:
            self._registry.log_params(
                run_id,
                {
                    **options.as_params(),
                    **data.summary(),
                    "device": self._resolved_device(),
                    "git_commit": self._git_commit,
                    "model_name": name,
                    "version": version,
                    "request_id": request.request_id,
                    "gate_metric": self._settings.gate_metric,
                    "gate_margin": self._settings.gate_margin,
                },
            )
            results = [
                self._train_type(kind, data, options, experiment_id, run_id, version)
                for kind in options.router_types
            ]
            winner = self._pick(results)
            run_metrics = dict(winner.evaluation.metrics)
            run_metrics["train_seconds"] = winner.seconds
            for result in results:
                run_metrics.update(
                    {f"{result.kind}.{k}": v for k, v in result.evaluation.metrics.items()}
                )
            run_metrics.update({f"random.{k}": v for k, v in baseline.metrics.items()})
            if champion_eval is not None:
                run_metrics.update({f"champion.{k}": v for k, v in champion_eval.metrics.items()})
            self._registry.log_metrics(run_id, run_metrics)
            self._registry.set_run_tags(run_id, {TAG_ROUTER_TYPE: winner.kind})
            summary = {k: run_metrics[k] for k in SUMMARY_METRICS if k in run_metrics}
            self._work_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self._work_dir) as tmp:
                folder = Path(tmp) / "bundle"
                curves = [r.evaluation for r in results]
                if champion_eval is not None:
                    curves.append(champion_eval)
                curves.append(baseline)
                title = f"{name} {version} (validation)"
                png = plot_strong_weak(curves, Path(tmp) / "curve.png", title=title)
                self._registry.log_artifact(run_id, png, "plots")
                if winner.evaluation.multi is not None:
                    png = plot_cost_quality(curves, Path(tmp) / "cost-quality.png", title=title)
                    self._registry.log_artifact(run_id, png, "plots")
                write_bundle(
                    winner.router,
                    folder,
                    name=name,
                    version=version,
                    candidates=[self._candidate(m, data) for m in data.models],
                    signer=self._signer,
                    featurizer=self._embeddings.featurizer,
                    metrics=summary,
                    calibration={
                        **winner.evaluation.calibration(),
                        "strong": data.strong,
                        "weak": data.weak,
                    },
                    training=self._training_info(request, options, data, winner),
                )
                signature = json.loads((folder / SIGNATURE).read_text())
                location = self._bundles.upload(folder, name=name, version=version)
                self._registry.log_artifacts(run_id, folder, "bundle")
            source = self._registry.artifact_uri(run_id, "bundle")
            raced = self._registry.find_by_request(name, request.request_id)
            if raced:
                logger.warning("request %s was registered meanwhile; adopting it", version)
                if not parent_run_id:
                    self._registry.end_run(run_id, "KILLED")
                return self._resume(request, raced[0])
            tags = {
                **request_tags,
                TAG_ROUTER_TYPE: winner.kind,
                TAG_METRICS: json.dumps(summary, sort_keys=True),
                TAG_BUNDLE: location.to_json(),
                TAG_SIGNATURE: json.dumps(signature, sort_keys=True),
                "routeiq.source": data.source,
                "routeiq.candidates": ",".join(data.models),
                "routeiq.data_window_start_ms": str(data.window_start_ms or ""),
                "routeiq.data_window_end_ms": str(data.window_end_ms or ""),
                "routeiq.shard_count": str(data.shard_count),
                "routeiq.git_commit": self._git_commit,
                "routeiq.device": str(winner.info.get("device", "cpu")),
            }
            info = self._registry.register(
                name,
                source=source,
                run_id=run_id,
                tags=tags,
                description=(
                    f"{winner.kind} router {version} from {data.source}; "
                    f"{self._settings.gate_metric} "
                    f"{summary.get(self._settings.gate_metric, float('nan')):.4f}"
                ),
            )
            earliest = self._earliest(request, info)
            if earliest.number != info.number:
                if not parent_run_id:
                    self._registry.end_run(run_id, "KILLED")
                return self._resume(request, earliest)
            self._metrics.versions.inc()
            if not parent_run_id:
                self._registry.end_run(run_id)
        except BaseException:
            if not parent_run_id:
                try:
                    self._registry.end_run(run_id, "FAILED")
                except TrainerError:
                    logger.warning("could not mark run %s failed", run_id)
            raise
        logger.info(
            "registered %s %s as MLflow version %s (%s, %s %.4f)",
            name,
            version,
            info.number,
            winner.kind,
            self._settings.gate_metric,
            summary.get(self._settings.gate_metric, float("nan")),
        )
        return self._gate_and_announce(
            request,
            info,
            challenger=winner.evaluation,
            champion=champion,
            champion_eval=champion_eval,
            champion_note=champion_note,
            baseline=baseline,
            status="trained",
        )

    def _train_type(
        self,
        kind: str,
        data: PreparedData,
        options: TrainOptions,
        experiment_id: str,
        parent_run_id: str,
        version: str,
    ) -> TypeResult:
        cls = router_class(kind)
        params = options.router_params.get(kind, {})
        if cls.needs_text and data.train.texts is None:
            raise RequestError(f"{kind} needs query text, which {data.source} does not carry")
        ctx = FitContext(
            seed=options.seed,
            device=self._fit_device,
            log=lambda message: logger.debug("%s: %s", kind, message),
        )
        start = time.perf_counter()
        try:
            router = cls.fit(data.train, params, ctx=ctx)
        except RouterError as exc:
            raise RequestError(f"{kind}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise RequestError(f"{kind}: cannot train with {params}: {exc}") from exc
        seconds = time.perf_counter() - start
        self._metrics.training_seconds.labels(kind).observe(seconds)
        evaluation = evaluate(kind, predict(router, data), data, cost_weight=options.cost_weight)
        run_id = self._registry.start_run(
            experiment_id,
            run_name=f"{version}-{kind}",
            tags={TAG_ROUTER_TYPE: kind, "routeiq.version": version},
            parent_run_id=parent_run_id,
        )
        info = dict(ctx.info)
        self._registry.log_params(
            run_id,
            {
                **router.params,
                "router_type": kind,
                "device": info.get("device", "cpu"),
                "mixed_precision": info.get("mixed_precision", "off"),
                "train_examples": len(data.train),
            },
        )
        self._registry.log_metrics(
            run_id,
            {
                **evaluation.metrics,
                "train_seconds": seconds,
                "examples_per_s": len(data.train) / max(seconds, 1e-9),
                **({"final_loss": info["final_loss"]} if "final_loss" in info else {}),
            },
        )
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir) as tmp:
            png = plot_strong_weak([evaluation], Path(tmp) / "curve.png", title=f"{kind} {version}")
            self._registry.log_artifact(run_id, png, "plots")
        self._registry.end_run(run_id)
        logger.info(
            "%s trained in %.1fs on %s: %s",
            kind,
            seconds,
            info.get("device", "cpu"),
            {k: round(v, 4) for k, v in evaluation.metrics.items() if k in SUMMARY_METRICS},
        )
        return TypeResult(kind, router, evaluation, info, seconds, run_id)

    def _pick(self, results: list[TypeResult]) -> TypeResult:
        metric = self._settings.gate_metric
        scored = [r for r in results if math.isfinite(r.evaluation.metrics.get(metric, math.nan))]
        if not scored:
            raise RequestError(
                f"no router has a finite {metric} on the validation rows (for bandit-only "
                "shards, where strong and weak are rarely both graded, gate on ope_snips; "
                "aiq needs rows where every candidate was graded)"
            )
        sign = 1.0 if GATE_METRICS[metric] else -1.0
        return max(scored, key=lambda r: sign * r.evaluation.metrics[metric])

    # ------------------------------------------------------------ gate

    def _score_champion(
        self, champion: VersionInfo | None, data: PreparedData, options: TrainOptions
    ) -> tuple[Evaluation | None, str]:
        if champion is None:
            return None, "no champion yet"
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir) as tmp:
            bundle = self._ops.load(champion, Path(tmp) / "champion", probes=False)
            try:
                predicted = predict(bundle.router, data, featurizer=bundle.featurizer)
            except IncomparableError as exc:
                return None, f"champion {champion.version} cannot be scored here: {exc}"
        label = f"champion {champion.version}"
        return evaluate(label, predicted, data, cost_weight=options.cost_weight), label

    def _gate_and_announce(
        self,
        request: TrainRequest,
        info: VersionInfo,
        *,
        challenger: Evaluation,
        champion: VersionInfo | None,
        champion_eval: Evaluation | None,
        champion_note: str,
        baseline: Evaluation,
        status: str,
    ) -> Outcome:
        metric, margin = self._settings.gate_metric, self._settings.gate_margin
        value = challenger.metrics.get(metric, math.nan)
        if champion is None:
            decision = decide(
                metric=metric,
                margin=margin,
                challenger=value,
                baseline=baseline.metrics.get(metric, math.nan),
                baseline_label="a random router (no champion yet)",
            )
        elif champion_eval is None:
            promote = self._settings.gate_when_incomparable == "promote"
            decision = GateDecision(
                promote,
                metric,
                value,
                math.nan,
                f"champion {champion.version}",
                margin,
                f"{champion_note}; gate_when_incomparable={self._settings.gate_when_incomparable}",
            )
        else:
            decision = decide(
                metric=metric,
                margin=margin,
                challenger=value,
                baseline=champion_eval.metrics.get(metric, math.nan),
                baseline_label=f"champion {champion.version}",
            )
        previous = champion.version if champion else ""
        self._registry.set_tags(info.name, info.number, {**decision.tags(), TAG_PREVIOUS: previous})
        if info.run_id:
            self._registry.set_run_tags(info.run_id, decision.tags())
            if math.isfinite(decision.baseline):
                self._registry.log_metrics(
                    info.run_id,
                    {
                        "gate.baseline": decision.baseline,
                        "gate.improvement": improvement(metric, value, decision.baseline),
                    },
                )
        logger.info("gate for %s %s: %s", info.name, info.version, decision.reason)
        if not decision.passed:
            self._metrics.gate_held.inc()
            return Outcome(
                request.request_id,
                info.name,
                info.version,
                status,
                info.number,
                info.run_id,
                info.router_type,
                decision,
                None,
                info.metrics,
            )
        announced = self._ops.announce(
            info, action=PROMOTE, previous=previous or None, reason=decision.reason
        )
        return Outcome(
            request.request_id,
            info.name,
            info.version,
            status,
            info.number,
            info.run_id,
            info.router_type,
            decision,
            announced.record,
            info.metrics,
        )

    # ------------------------------------------------------------ idempotency

    def _resume(self, request: TrainRequest, info: VersionInfo) -> Outcome:
        """Finish whatever a previous attempt at this request left undone."""
        tags = info.tags
        gate = tags.get(TAG_GATE)
        done = Outcome(
            request.request_id,
            info.name,
            info.version,
            "duplicate",
            info.number,
            info.run_id,
            info.router_type,
            None,
            None,
            info.metrics,
        )
        if TAG_ANNOUNCED in tags or gate == "held":
            logger.info(
                "request %s is %s %s already (gate %s): nothing to do",
                request.request_id,
                info.name,
                info.version,
                gate,
            )
            return done
        if gate == "passed":
            previous = tags.get(TAG_PREVIOUS) or None
            current = self._registry.champion(info.name)
            moved_on = current is not None and current.version not in {info.version, previous}
            if moved_on:
                # Another version became champion since this one passed: announcing this one
                # now would silently undo that.
                self._registry.set_tags(info.name, info.number, {TAG_ANNOUNCED: "superseded"})
                return done
            announced = self._ops.announce(
                info,
                action=PROMOTE,
                previous=previous,
                reason=tags.get(TAG_GATE_REASON, "gate passed"),
            )
            return Outcome(
                request.request_id,
                info.name,
                info.version,
                "resumed",
                info.number,
                info.run_id,
                info.router_type,
                None,
                announced.record,
                info.metrics,
            )
        # Registered, but the gate never ran: score the stored bundle as the challenger.
        options = resolve_options(request, self._settings)
        data = self._loader.load(request, options)
        champion = self._registry.champion(info.name)
        champion_eval, note = self._score_champion(champion, data, options)
        baseline = random_baseline(data, seed=options.seed, cost_weight=options.cost_weight)
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir) as tmp:
            bundle = self._ops.load(info, Path(tmp) / "challenger", probes=False)
            challenger = evaluate(
                info.router_type,
                predict(bundle.router, data, featurizer=bundle.featurizer),
                data,
                cost_weight=options.cost_weight,
            )
        return self._gate_and_announce(
            request,
            info,
            challenger=challenger,
            champion=champion,
            champion_eval=champion_eval,
            champion_note=note,
            baseline=baseline,
            status="resumed",
        )

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

    def _close_stale_runs(self, name: str, request_id: str) -> None:
        """Runs of an earlier attempt that died before registering: mark them KILLED."""
        for run_id, status in self._registry.runs_for_request(name, request_id):
            if status == "RUNNING":
                self._registry.end_run(run_id, "KILLED")

    # ------------------------------------------------------------ helpers

    def _resolved_device(self) -> str:
        from routeiq.routing.routers.base import torch_device

        return torch_device(self._fit_device)

    @staticmethod
    def _candidate(model: str, data: PreparedData) -> Candidate:
        price = data.prices.get(model)
        if price is None:
            return Candidate(model)
        return Candidate(model, price.input_per_m, price.output_per_m)

    def _training_info(
        self,
        request: TrainRequest,
        options: TrainOptions,
        data: PreparedData,
        winner: TypeResult,
    ) -> dict[str, Any]:
        return {
            "request_id": request.request_id,
            "requested_at": request.requested_at_ms,
            "trained_at": int(time.time() * 1000),
            "router_type": winner.kind,
            "fit": winner.info,
            "git_commit": self._git_commit,
            "options": options.as_params(),
            "data": data.summary(),
            "gate_metric": self._settings.gate_metric,
        }
