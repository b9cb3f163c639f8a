"""`routeiq eval`: the offline router-quality benchmark, with the trainer's own code.

Three things can be evaluated on a labelled test set:

* a router trained here from a dataset file (``--train FILE --router TYPE``): the trainer's
  data preparation, router ``fit`` and metrics, so the numbers are what the trainer would log;
* a registered version (``--model NAME [--version V]``, champion by default) or a local bundle
  folder (``--bundle DIR``), verified (signature, hashes, probes) before it is used;
* a built-in strategy that needs no training (``--strategy random|strongest|cheapest``).

Reported: APGR, CPT(50%), CPT(80%) with percentile-bootstrap 95% CIs, the quality-vs-strong-
call curve (PNG), and cost per 1k requests at the router's 50%-strong operating point and
for always-strong / always-weak, from model prices. Deterministic for a given ``--seed``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from routeiq.errors import ConfigError
from routeiq.routing.datasets import RoutingDataset, load_named
from routeiq.routing.evaluation import Interval, bootstrap_quality, router_quality

F64 = NDArray[np.float64]


def load_spec(spec: str, *, split_seed: int = 0) -> RoutingDataset:
    """``NAME`` or ``FILE.csv``, optionally ``:train`` / ``:test`` for a seeded 50/50 half."""
    name, part = spec, ""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in {"train", "test"}:
        name, part = head, tail
    ds = load_named(name)
    if not part:
        return ds
    train, test = ds.split(test_fraction=0.5, seed=split_seed)
    return train if part == "train" else test


@dataclass
class EvalResult:
    label: str
    intervals: dict[str, Interval]
    strong: str
    weak: str
    strong_quality: float
    weak_quality: float
    cost_per_1k: dict[str, float]
    curve: Path | None
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "router": self.label,
            "rows": self.rows,
            "strong": self.strong,
            "weak": self.weak,
            **{k: {"value": v.value, "ci95": [v.low, v.high]} for k, v in self.intervals.items()},
            "strong_quality": self.strong_quality,
            "weak_quality": self.weak_quality,
            "cost_per_1k_requests_usd": self.cost_per_1k,
            "curve_png": str(self.curve) if self.curve else None,
        }


def scored(
    label: str,
    win: F64,
    test: RoutingDataset,
    costs: F64,
    strong: str,
    weak: str,
    *,
    seed: int,
    samples: int,
    out: Path | None,
) -> EvalResult:
    """Metrics, CIs, costs and the curve for one router's win scores on the test rows."""
    s, w = test.models.index(strong), test.models.index(weak)
    qs, qw = test.scores[:, s], test.scores[:, w]
    keep = np.isfinite(qs) & np.isfinite(qw) & np.isfinite(win)
    win, qs, qw, costs = win[keep], qs[keep], qw[keep], costs[keep]
    intervals = bootstrap_quality(win, qs, qw, samples=samples, seed=seed)
    quality = router_quality(win, qs, qw)
    # The router's cost at its median threshold: half the traffic on the strong model.
    half = win >= np.quantile(win, 0.5)
    routed = np.where(half, costs[:, s], costs[:, w])
    cost = {
        "router_at_50pct_strong": 1000 * float(routed.mean()),
        "always_strong": 1000 * float(costs[:, s].mean()),
        "always_weak": 1000 * float(costs[:, w].mean()),
    }
    curve = None
    if out is not None:
        curve = plot(label, quality, out / f"curve-{label.replace('/', '_')}.png")
    return EvalResult(
        label,
        intervals,
        strong,
        weak,
        quality.strong_quality,
        quality.weak_quality,
        cost,
        curve,
        int(keep.sum()),
    )


def plot(label: str, quality: Any, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(quality.points, key=lambda p: (p.strong_pct, p.quality))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    try:
        ax.plot(
            [p.strong_pct for p in pts],
            [p.quality for p in pts],
            marker="o",
            markersize=3,
            label=f"{label} (APGR {quality.apgr:.3f})",
        )
        ax.plot(
            [0, 100],
            [quality.weak_quality, quality.strong_quality],
            linestyle="--",
            color="grey",
            label="random (expected)",
        )
        ax.axhline(quality.strong_quality, color="grey", linewidth=0.8, linestyle=":")
        ax.axhline(quality.weak_quality, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("strong-model calls (%)")
        ax.set_ylabel("mean quality")
        ax.set_title(f"quality vs strong calls: {label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def run_eval(
    *,
    test_spec: str,
    train_spec: str | None,
    router: str | None,
    params: dict[str, Any],
    bundle_dir: Path | None,
    model: str | None,
    version: str | None,
    verify: tuple[str, str] | None,
    strategy: str | None,
    split_seed: int,
    seed: int,
    samples: int,
    out: Path | None,
    cache_dir: Path,
) -> EvalResult:
    from routeiq.routing.routers import FitContext, router_class
    from routeiq_trainer.core.data import prepare_train_test
    from routeiq_trainer.core.embeddings import EmbeddingStore

    test = load_spec(test_spec, split_seed=split_seed)
    if test.strong is None or test.weak is None:
        raise ConfigError(
            f"{test_spec}: APGR needs a strong/weak pair; this set has "
            f"{len(test.models)} models (use a two-model dataset)"
        )
    embeddings = EmbeddingStore(cache_dir=cache_dir)
    prepared = prepare_train_test(
        load_spec(train_spec, split_seed=split_seed) if train_spec else test,
        test,
        embeddings=embeddings,
        seed=seed,
    )
    costs = prepared.validation_costs
    s, w = prepared.strong_index, prepared.weak_index
    rng = np.random.default_rng(seed)
    if strategy is not None:
        if strategy == "random":
            win = rng.random(len(test))
        elif strategy in {"strongest", "cheapest"}:
            # A constant score: every threshold sends all or nothing to the strong model.
            win = np.full(len(test), 1.0 if strategy == "strongest" else 0.0)
        else:
            raise ConfigError(f"unknown strategy {strategy!r}: random, strongest or cheapest")
        label = strategy
    elif router is not None:
        if train_spec is None:
            raise ConfigError("--router needs --train")
        ctx = FitContext(seed=seed)
        trained = router_class(router).fit(prepared.train, params, ctx=ctx)
        pred = trained.predict(prepared.validation.embeddings, prepared.validation.texts)
        win = pred[:, s] - pred[:, w]
        label = router
    else:
        pred = _bundle_predictions(prepared, bundle_dir, model, version, verify, embeddings)
        win = pred[:, s] - pred[:, w]
        label = f"bundle {bundle_dir.name}" if bundle_dir else f"{model}/{version or 'champion'}"
    return scored(
        label,
        np.asarray(win, dtype=np.float64),
        test,
        costs,
        prepared.strong,
        prepared.weak,
        seed=seed,
        samples=samples,
        out=out,
    )


def _bundle_predictions(
    prepared: Any,
    bundle_dir: Path | None,
    model: str | None,
    version: str | None,
    verify: tuple[str, str] | None,
    embeddings: Any,
) -> F64:
    """A bundle's predictions on the test rows, after the same checks a gateway makes."""
    from routeiq.routing.bundle import load_bundle, run_probes, verifier_from

    if bundle_dir is not None:
        if verify is None:
            raise ConfigError("a bundle folder is verified before use: pass --verify-key")
        bundle = load_bundle(bundle_dir, verifier_from(*verify))
        run_probes(bundle, embeddings.featurize)
    elif model is not None:
        from routeiq_trainer.wiring import build_services

        from routeiq_cli.models import trainer_settings

        services = build_services(trainer_settings(), pipeline=False)
        try:
            registry = services.ops.registry
            info = registry.get(model, version) if version else registry.champion(model)
            if info is None:
                raise ConfigError(f"{model} has no champion; name a --version")
            tmp = Path(tempfile.mkdtemp(prefix="routeiq-eval-"))
            bundle = services.ops.load(info, tmp / "bundle")
        finally:
            services.close()
    else:
        raise ConfigError(
            "choose what to evaluate: --train/--router, --bundle, --model or --strategy"
        )
    missing = set(prepared.models) - set(bundle.manifest.models)
    if missing:
        raise ConfigError(f"the bundle does not score {sorted(missing)}")
    raw = bundle.router.predict(prepared.validation.embeddings, prepared.validation.texts)
    cols = [bundle.manifest.models.index(m) for m in prepared.models]
    return np.asarray(raw, dtype=np.float64)[:, cols]


def render(result: EvalResult) -> str:
    rows = [
        f"router {result.label} on {result.rows} test rows "
        f"(strong {result.strong}: {result.strong_quality:.3f}, weak {result.weak}: "
        f"{result.weak_quality:.3f})"
    ]
    for name in ("apgr", "cpt50", "cpt80"):
        iv = result.intervals[name]
        unit = "" if name == "apgr" else "% strong calls"
        rows.append(
            f"  {name.upper():<6} {iv.value:8.3f}  95% CI [{iv.low:.3f}, {iv.high:.3f}]"
            f" {unit}".rstrip()
        )
    for k, v in result.cost_per_1k.items():
        rows.append(f"  cost per 1k requests, {k:<24} ${v:8.3f}")
    if result.curve:
        rows.append(f"  curve: {result.curve}")
    return "\n".join(rows)


def to_json(result: EvalResult) -> str:
    return json.dumps(result.as_dict(), indent=2)
