"""Quality curves as PNGs (matplotlib, imported only here and only when drawing).

* ``plot_strong_weak``: RouteLLM's curve, quality against the share of strong-model calls;
* ``plot_cost_quality``: the N-candidate view, quality against mean cost per 1,000 requests,
  with every single model and the oracle as reference points.

The trainer logs both for each run; ``routeiq eval`` writes them for what it evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from routeiq.routing.assessment import RANDOM_DRAWS, Evaluation


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Any, ax: Any, path: Path, *, title: str, xlabel: str, empty: str | None) -> Path:
    """Axes labels, the legend (or ``empty``'s explanation in place of a curve), the PNG."""
    if empty is not None:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean quality")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if empty is None:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_strong_weak(evaluations: Sequence[Evaluation], path: Path, *, title: str) -> Path:
    """Quality against strong-call % for each evaluation (RouteLLM's curve), as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    try:
        for ev in evaluations:
            if ev.quality is None:
                continue
            pts = sorted(ev.quality.points, key=lambda p: (p.strong_pct, p.quality))
            apgr = ev.metrics.get("apgr", float("nan"))
            is_random = ev.label == "random"
            label = (
                f"random (one draw; mean APGR of {RANDOM_DRAWS}: {apgr:.3f})"
                if is_random
                else f"{ev.label} (APGR {apgr:.3f})"
            )
            ax.plot(
                [p.strong_pct for p in pts],
                [p.quality for p in pts],
                marker="o",
                markersize=3,
                linestyle="--" if is_random else "-",
                label=label,
            )
        ref = next((e.quality for e in evaluations if e.quality is not None), None)
        if ref is not None:
            ax.axhline(ref.strong_quality, color="grey", linewidth=0.8, linestyle=":")
            ax.axhline(ref.weak_quality, color="grey", linewidth=0.8, linestyle=":")
        return _finish(
            fig,
            ax,
            path,
            title=title,
            xlabel="strong-model calls (%)",
            empty=None
            if ref is not None
            else "no validation rows grade both the strong and the weak model:\n"
            "no quality curve (see the off-policy metrics)",
        )
    finally:
        plt.close(fig)


def plot_cost_quality(evaluations: Sequence[Evaluation], path: Path, *, title: str) -> Path:
    """Quality against cost per 1k requests for each evaluation over N candidates, as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    try:
        ref = None
        for ev in evaluations:
            if ev.multi is None:
                continue
            ref = ref or ev.multi
            pts = sorted(ev.multi.points, key=lambda p: p.cost)
            ax.plot(
                [1000 * p.cost for p in pts],
                [p.quality for p in pts],
                marker="o",
                markersize=2,
                linestyle="--" if ev.label == "random" else "-",
                label=f"{ev.label} (AIQ {ev.multi.aiq:.3f})",
            )
        if ref is not None:
            for name, (cost, quality) in ref.singles.items():
                ax.scatter([1000 * cost], [quality], color="grey", s=12, zorder=3)
                ax.annotate(name, (1000 * cost, quality), fontsize=6, alpha=0.8)
            ax.scatter(
                [1000 * ref.oracle_cost], [ref.oracle_quality], marker="*", color="black", s=60
            )
            ax.annotate("oracle", (1000 * ref.oracle_cost, ref.oracle_quality), fontsize=7)
        return _finish(
            fig,
            ax,
            path,
            title=title,
            xlabel="cost per 1k requests (USD)",
            empty=None
            if ref is not None
            else "no validation rows grade every candidate: no quality-cost curve",
        )
    finally:
        plt.close(fig)
