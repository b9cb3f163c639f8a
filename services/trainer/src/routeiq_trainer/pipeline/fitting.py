"""Step "fit": train one router type on a request's rows, score it, record it as a child run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from routeiq.routing.assessment import evaluate, predict
from routeiq.routing.plots import plot_strong_weak
from routeiq.routing.prepare import PreparedData
from routeiq.routing.routers import (
    FitContext,
    HeldOutReport,
    Router,
    RouterError,
    router_class,
)

from routeiq_trainer.bundles import scratch_dir
from routeiq_trainer.core.requests import TrainOptions
from routeiq_trainer.core.results import SUMMARY_METRICS, TypeResult
from routeiq_trainer.core.tags import TAG_ROUTER_TYPE, TAG_VERSION
from routeiq_trainer.errors import RequestError
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.tracking import ModelRegistry

logger = logging.getLogger(__name__)
# The run artifact (under evaluation/) that holds a router type's own held-out table.
REPORT_FILE = "held_out.txt"


@dataclass(frozen=True, kw_only=True)
class RouterFitter:
    """Fits router types; each becomes a run nested under the request's run."""

    registry: ModelRegistry
    metrics: TrainerMetrics
    work_dir: Path
    device: str | None

    def fit(
        self,
        kind: str,
        *,
        data: PreparedData,
        options: TrainOptions,
        experiment_id: str,
        parent_run_id: str,
        version: str,
    ) -> TypeResult:
        """Train ``kind``, score it on the validation rows and log it (``RequestError`` when
        the type cannot train on this data or with these parameters)."""
        try:
            cls = router_class(kind)
        except RouterError as exc:  # a plugin that is declared but broken
            raise RequestError(str(exc)) from exc
        params = options.router_params.get(kind, {})
        if cls.needs_text and data.train.texts is None:
            raise RequestError(f"{kind} needs query text, which {data.source} does not carry")
        ctx = FitContext(
            seed=options.seed,
            device=self.device,
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
        self.metrics.training_seconds.labels(kind).observe(seconds)
        evaluation = evaluate(kind, predict(router, data), data, cost_weight=options.cost_weight)
        report = _held_out_report(kind, router, data)
        info = dict(ctx.info)
        run_id = self.registry.start_run(
            experiment_id,
            run_name=f"{version}-{kind}",
            tags={TAG_ROUTER_TYPE: kind, TAG_VERSION: version},
            parent_run_id=parent_run_id,
        )
        self.registry.log_params(
            run_id,
            {
                **router.params,
                "router_type": kind,
                "device": info.get("device", "cpu"),
                "mixed_precision": info.get("mixed_precision", "off"),
                "train_examples": len(data.train),
            },
        )
        self.registry.log_metrics(
            run_id,
            {
                **evaluation.metrics,
                "train_seconds": seconds,
                "examples_per_s": len(data.train) / max(seconds, 1e-9),
                **({"final_loss": info["final_loss"]} if "final_loss" in info else {}),
                **(report.metrics if report else {}),
            },
        )
        with scratch_dir(self.work_dir) as tmp:
            png = plot_strong_weak([evaluation], tmp / "curve.png", title=f"{kind} {version}")
            self.registry.log_artifact(run_id, png, "plots")
            if report is not None:
                (tmp / REPORT_FILE).write_text(report.table + "\n")
                self.registry.log_artifact(run_id, tmp / REPORT_FILE, "evaluation")
                logger.info("%s on the validation rows:\n%s", kind, report.table)
        self.registry.end_run(run_id)
        logger.info(
            "%s trained in %.1fs on %s: %s",
            kind,
            seconds,
            info.get("device", "cpu"),
            {k: round(v, 4) for k, v in evaluation.metrics.items() if k in SUMMARY_METRICS},
        )
        return TypeResult(kind, router, evaluation, info, seconds, run_id)


def _held_out_report(kind: str, router: Router, data: PreparedData) -> HeldOutReport | None:
    """The router type's own report on the validation rows (the causal-LM router's policy
    table); a report that cannot be made is logged, never a reason to fail the request."""
    costs = {m: float(np.mean(data.validation_costs[:, j])) for j, m in enumerate(data.models)}
    try:
        return router.held_out_report(data.validation, costs=costs)
    except RouterError as exc:
        logger.warning("%s: no held-out report: %s", kind, exc)
        return None
