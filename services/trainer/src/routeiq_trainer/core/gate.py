"""The promotion gate: a challenger ships only when it beats the champion by a margin.

Both are scored on the same validation rows (the challenger's request's newest examples), on
the configured metric. Without a champion, the baseline is a random router on those rows
(APGR ≈ 0.5): a first version must still be measurably better than not learning at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from routeiq_trainer.config import GATE_METRICS
from routeiq_trainer.core.tags import TAG_GATE, TAG_GATE_BASELINE, TAG_GATE_METRIC, TAG_GATE_REASON


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and why."""

    passed: bool
    metric: str
    challenger: float
    baseline: float
    baseline_label: str
    margin: float
    reason: str

    def tags(self) -> dict[str, str]:
        return {
            TAG_GATE: "passed" if self.passed else "held",
            TAG_GATE_REASON: self.reason,
            TAG_GATE_METRIC: self.metric,
            TAG_GATE_BASELINE: self.baseline_label,
        }


def improvement(metric: str, challenger: float, baseline: float) -> float:
    """How much better the challenger is (positive = better), whatever the metric's direction."""
    higher_is_better = GATE_METRICS[metric]
    return challenger - baseline if higher_is_better else baseline - challenger


def decide(
    *, metric: str, margin: float, challenger: float, baseline: float, baseline_label: str
) -> GateDecision:
    """Pass iff the challenger's value is finite and better than the baseline's by more than
    ``margin`` (an equal or worse challenger never passes)."""
    if metric not in GATE_METRICS:
        raise ValueError(f"unknown gate metric {metric!r}")
    if not math.isfinite(challenger):
        return GateDecision(
            False,
            metric,
            challenger,
            baseline,
            baseline_label,
            margin,
            f"challenger has no finite {metric} on the validation rows",
        )
    if not math.isfinite(baseline):
        return GateDecision(
            True,
            metric,
            challenger,
            baseline,
            baseline_label,
            margin,
            f"{baseline_label} has no finite {metric} on these rows; challenger {metric} "
            f"{challenger:.4f}",
        )
    gain = improvement(metric, challenger, baseline)
    passed = gain > margin
    verb = "beats" if passed else "does not beat"
    return GateDecision(
        passed,
        metric,
        challenger,
        baseline,
        baseline_label,
        margin,
        f"challenger {metric} {challenger:.4f} {verb} {baseline_label} {baseline:.4f} by more "
        f"than {margin:g} (difference {gain:+.4f})",
    )


def judge(
    *,
    metric: str,
    margin: float,
    challenger: Mapping[str, float],
    random: Mapping[str, float],
    champion_version: str | None,
    champion: Mapping[str, float] | None,
    champion_note: str,
    when_incomparable: str,
) -> GateDecision:
    """The gate for a challenger: against the champion's metrics on the same rows; without a
    champion, against a random router's; with a champion that could not be scored there
    (``champion`` None, ``champion_note`` says why), ``when_incomparable`` decides."""
    value = challenger.get(metric, math.nan)
    if champion_version is None:
        return decide(
            metric=metric,
            margin=margin,
            challenger=value,
            baseline=random.get(metric, math.nan),
            baseline_label="a random router (no champion yet)",
        )
    label = f"champion {champion_version}"
    if champion is None:
        return GateDecision(
            when_incomparable == "promote",
            metric,
            value,
            math.nan,
            label,
            margin,
            f"{champion_note}; gate_when_incomparable={when_incomparable}",
        )
    return decide(
        metric=metric,
        margin=margin,
        challenger=value,
        baseline=champion.get(metric, math.nan),
        baseline_label=label,
    )
