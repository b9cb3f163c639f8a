"""Steps "gate" and "announce": score challenger and champion on the same rows, record the
verdict on the version, and (if it passed) verify, move ``champion`` and announce."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from routeiq.routing.assessment import Evaluation, IncomparableError, evaluate, predict
from routeiq.routing.prepare import PreparedData

from routeiq_trainer.announce import PROMOTE
from routeiq_trainer.bundles import scratch_dir
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.gate import improvement, judge
from routeiq_trainer.core.requests import TrainOptions
from routeiq_trainer.core.results import Outcome
from routeiq_trainer.core.tags import TAG_PREVIOUS
from routeiq_trainer.core.versions import VersionInfo
from routeiq_trainer.metrics import TrainerMetrics
from routeiq_trainer.ops import ModelOps
from routeiq_trainer.tracking import ModelRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Gatekeeper:
    """Scores stored bundles, applies the gate and announces what passes."""

    settings: TrainerSettings
    registry: ModelRegistry
    ops: ModelOps
    metrics: TrainerMetrics
    work_dir: Path

    def score_champion(
        self, champion: VersionInfo | None, data: PreparedData, options: TrainOptions
    ) -> tuple[Evaluation | None, str]:
        """The champion's evaluation on ``data`` (None, with the reason, when there is none
        or it cannot be scored on these rows)."""
        if champion is None:
            return None, "no champion yet"
        label = f"champion {champion.version}"
        try:
            return self.score(champion, data, options, label=label), label
        except IncomparableError as exc:
            return None, f"champion {champion.version} cannot be scored here: {exc}"

    def score(
        self, info: VersionInfo, data: PreparedData, options: TrainOptions, *, label: str
    ) -> Evaluation:
        """Download and verify ``info``'s bundle and evaluate it on ``data``'s validation rows."""
        with scratch_dir(self.work_dir) as tmp:
            bundle = self.ops.load(info, tmp / "bundle", probes=False)
            predicted = predict(bundle.router, data, featurizer=bundle.featurizer)
        return evaluate(label, predicted, data, cost_weight=options.cost_weight)

    def gate_and_announce(
        self,
        request_id: str,
        info: VersionInfo,
        *,
        challenger: Evaluation,
        champion: VersionInfo | None,
        champion_eval: Evaluation | None,
        champion_note: str,
        baseline: Evaluation,
        status: str,
    ) -> Outcome:
        """Gate ``info`` (the registered challenger), record the verdict, announce if passed."""
        settings = self.settings
        metric = settings.gate_metric
        decision = judge(
            metric=metric,
            margin=settings.gate_margin,
            challenger=challenger.metrics,
            random=baseline.metrics,
            champion_version=champion.version if champion else None,
            champion=champion_eval.metrics if champion_eval is not None else None,
            champion_note=champion_note,
            when_incomparable=settings.gate_when_incomparable,
        )
        previous = champion.version if champion else ""
        self.registry.set_tags(info.name, info.number, {**decision.tags(), TAG_PREVIOUS: previous})
        if info.run_id:
            self.registry.set_run_tags(info.run_id, decision.tags())
            if math.isfinite(decision.baseline):
                gain = improvement(metric, decision.challenger, decision.baseline)
                self.registry.log_metrics(
                    info.run_id, {"gate.baseline": decision.baseline, "gate.improvement": gain}
                )
        logger.info("gate for %s %s: %s", info.name, info.version, decision.reason)
        if not decision.passed:
            self.metrics.gate_held.inc()
            return Outcome(request_id, info, status=status, gate=decision)
        announced = self.ops.announce(
            info, action=PROMOTE, previous=previous or None, reason=decision.reason
        )
        return Outcome(
            request_id, info, status=status, gate=decision, announcement=announced.record
        )
