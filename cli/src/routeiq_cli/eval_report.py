"""What `routeiq eval` reports: per-seed metrics, their mean ± sd, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Metrics shown in the table, in order, with how they print.
PAIR_METRICS = (("apgr", "APGR", "{:.3f}"), ("cpt50", "CPT50%", "{:.1f}"))
MULTI_METRICS = (
    ("aiq", "AIQ", "{:.3f}"),
    ("quality_at_50pct_cost", "q@50%cost", "{:.3f}"),
    ("max_quality", "q max", "{:.3f}"),
)


@dataclass
class SeedResult:
    seed: int
    rows: int
    metrics: dict[str, dict[str, float]]  # label -> metrics


@dataclass
class EvalReport:
    dataset: str
    features: str
    cost_model: str
    models: tuple[str, ...]
    pair: tuple[str, str] | None
    split: str
    seeds: list[SeedResult]
    references: dict[str, Any]
    labels: list[str]
    curves: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """label -> metric -> {mean, sd, min, max} over the seeds."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for label in self.labels:
            per = [s.metrics[label] for s in self.seeds if label in s.metrics]
            keys = set.intersection(*(set(m) for m in per)) if per else set()
            out[label] = {}
            for key in sorted(keys):
                values = np.array([m[key] for m in per], dtype=np.float64)
                out[label][key] = {
                    "mean": float(values.mean()),
                    "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "min": float(values.min()),
                    "max": float(values.max()),
                }
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "features": self.features,
            "cost_model": self.cost_model,
            "models": list(self.models),
            "pair": list(self.pair) if self.pair else None,
            "split": self.split,
            "references": self.references,
            "summary": self.summary(),
            "per_seed": [
                {"seed": s.seed, "rows": s.rows, "metrics": s.metrics} for s in self.seeds
            ],
            "curves": [str(p) for p in self.curves],
        }


def _fmt(stats: Mapping[str, float] | None, pattern: str) -> str:
    if stats is None:
        return "—"
    return f"{pattern.format(stats['mean'])} ± {pattern.format(stats['sd'])}"


def render(report: EvalReport) -> str:
    """A table: one row per router, mean ± sd over the seeds, then per-seed values."""
    summary = report.summary()
    columns = [*(PAIR_METRICS if report.pair else ()), *MULTI_METRICS]
    columns = [c for c in columns if any(c[0] in summary[label] for label in report.labels)]
    lines = [
        f"{report.dataset}: {report.seeds[0].rows} test rows, {len(report.models)} models, "
        f"{len(report.seeds)} seeds ({report.split})",
        f"features: {report.features}; cost per request: {report.cost_model}",
    ]
    if report.pair:
        lines.append(f"pair for APGR/CPT: strong {report.pair[0]}, weak {report.pair[1]}")
    refs = report.references
    if refs:
        best = refs["best_single"]
        lines.append(
            f"seed 0 references: best single model {best['model']} quality "
            f"{best['quality']:.3f} at ${1000 * best['cost']:.4f}/1k requests; oracle "
            f"{refs['oracle']['quality']:.3f} at ${1000 * refs['oracle']['cost']:.4f}/1k"
        )
    width = max(len(label) for label in report.labels) + 2
    header = "router".ljust(width) + "".join(f"{title:>18}" for _, title, _ in columns)
    lines += ["", header, "-" * len(header)]
    for label in report.labels:
        row = label.ljust(width)
        for key, _, pattern in columns:
            row += f"{_fmt(summary[label].get(key), pattern):>18}"
        lines.append(row)
    lines += ["", "per seed:"]
    for key, title, pattern in columns:
        lines.append(f"  {title}")
        for label in report.labels:
            values = [s.metrics.get(label, {}).get(key) for s in report.seeds]
            shown = " ".join("—" if v is None else pattern.format(v) for v in values)
            lines.append(f"    {label.ljust(width)}{shown}")
    if "quality_at_50pct_cost" in {c[0] for c in columns} and refs:
        lines.append(
            "  (q@50%cost: λ calibrated on the test rows' predictions and prices alone to "
            "spend at most half the best single model's cost)"
        )
    for path in report.curves:
        lines.append(f"curve: {path}")
    return "\n".join(lines)


def to_json(report: EvalReport) -> str:
    return json.dumps(report.as_dict(), indent=2)
