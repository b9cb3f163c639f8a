"""What training a request produces, and the pure steps between fitting and registering.

``pick`` chooses the challenger among the trained types; ``run_metrics``, ``summary`` and
``version_tags`` say what is recorded on the run and the version; ``bundle_training`` is the
provenance written into the bundle. No I/O: the pipeline (``routeiq_trainer.pipeline``)
does the recording.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routeiq.routing.assessment import Evaluation
from routeiq.routing.bundle import Candidate
from routeiq.routing.prepare import PreparedData
from routeiq.routing.routers import Router

from routeiq_trainer.config import GATE_METRICS
from routeiq_trainer.core import tags
from routeiq_trainer.core.gate import GateDecision
from routeiq_trainer.core.requests import TrainOptions, TrainRequest
from routeiq_trainer.core.versions import VersionInfo
from routeiq_trainer.errors import RequestError

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
    """What handling a request did, and the registered version it ended at."""

    request_id: str
    info: VersionInfo
    status: str  # trained | resumed | duplicate
    gate: GateDecision | None = None
    announcement: dict[str, Any] | None = None

    # The version's identity, read from ``info`` (never copied, so it cannot disagree).
    @property
    def version(self) -> str:
        return self.info.version

    @property
    def mlflow_version(self) -> str:
        return self.info.number

    @property
    def run_id(self) -> str | None:
        return self.info.run_id

    @property
    def metrics(self) -> dict[str, float]:
        return self.info.metrics

    @property
    def announced(self) -> bool:
        return self.announcement is not None


def pick(results: list[TypeResult], *, metric: str) -> TypeResult:
    """The challenger: the best type on the gate metric (``RequestError`` if none is finite)."""
    scored = [r for r in results if math.isfinite(r.evaluation.metrics.get(metric, math.nan))]
    if not scored:
        raise RequestError(
            f"no router has a finite {metric} on the validation rows (for bandit-only "
            "shards, where strong and weak are rarely both graded, gate on ope_snips; "
            "aiq needs rows where every candidate was graded)"
        )
    sign = 1.0 if GATE_METRICS[metric] else -1.0
    return max(scored, key=lambda r: sign * r.evaluation.metrics[metric])


def run_metrics(
    winner: TypeResult,
    results: list[TypeResult],
    *,
    random: Evaluation,
    champion: Evaluation | None,
) -> dict[str, float]:
    """The request run's metrics: the winner's unprefixed, every type's, the random router's
    and the champion's under their own prefix."""
    out = dict(winner.evaluation.metrics)
    out["train_seconds"] = winner.seconds
    for result in results:
        out.update({f"{result.kind}.{k}": v for k, v in result.evaluation.metrics.items()})
    out.update({f"random.{k}": v for k, v in random.metrics.items()})
    if champion is not None:
        out.update({f"champion.{k}": v for k, v in champion.metrics.items()})
    return out


def summary(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics a version carries in its tag and its announcement."""
    return {k: metrics[k] for k in SUMMARY_METRICS if k in metrics}


def request_tags(request: TrainRequest) -> dict[str, str]:
    """Tags naming the request, on its run and its version (the idempotency key among them)."""
    return {
        tags.TAG_REQUEST_KEY: tags.request_key(request.request_id),
        tags.TAG_REQUEST_ID: request.request_id[: tags.MAX_TAG_CHARS],
        tags.TAG_VERSION: request.version,
        tags.TAG_MODEL_NAME: request.model_name,
        tags.TAG_REASON: request.reason,
        tags.TAG_REQUESTED_BY: request.requested_by[: tags.MAX_TAG_CHARS],
    }


@dataclass(frozen=True)
class Challenger:
    """A request's best router type and what is recorded with it (bundle, version tags)."""

    request: TrainRequest
    options: TrainOptions
    data: PreparedData
    winner: TypeResult
    summary: dict[str, float]
    git_commit: str


def version_tags(
    challenger: Challenger, *, bundle_json: str, signature: Mapping[str, Any]
) -> dict[str, str]:
    """Everything a registered version records about itself (see ``core.tags``)."""
    data = challenger.data
    return {
        **request_tags(challenger.request),
        tags.TAG_ROUTER_TYPE: challenger.winner.kind,
        tags.TAG_METRICS: json.dumps(challenger.summary, sort_keys=True),
        tags.TAG_BUNDLE: bundle_json,
        tags.TAG_SIGNATURE: json.dumps(dict(signature), sort_keys=True),
        tags.TAG_SOURCE: data.source,
        tags.TAG_CANDIDATES: ",".join(data.models),
        tags.TAG_WINDOW_START: str(data.window_start_ms or ""),
        tags.TAG_WINDOW_END: str(data.window_end_ms or ""),
        tags.TAG_SHARD_COUNT: str(data.shard_count),
        tags.TAG_GIT_COMMIT: challenger.git_commit,
        tags.TAG_DEVICE: str(challenger.winner.info.get("device", "cpu")),
    }


def candidates(data: PreparedData) -> list[Candidate]:
    """The bundle's candidates, with list prices where known."""
    out = []
    for model in data.models:
        price = data.prices.get(model)
        if price is None:
            out.append(Candidate(model))
        else:
            out.append(Candidate(model, price.input_per_m, price.output_per_m))
    return out


def bundle_training(
    challenger: Challenger, *, gate_metric: str, trained_at_ms: int
) -> dict[str, Any]:
    """The provenance a bundle carries (``training`` in its manifest)."""
    request = challenger.request
    return {
        "request_id": request.request_id,
        "requested_at": request.requested_at_ms,
        "trained_at": trained_at_ms,
        "router_type": challenger.winner.kind,
        "fit": challenger.winner.info,
        "git_commit": challenger.git_commit,
        "options": challenger.options.as_params(),
        "data": challenger.data.summary(),
        "gate_metric": gate_metric,
    }
