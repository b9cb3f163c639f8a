"""`routeiq eval`: offline router quality over several split seeds, with the library's code.

What is scored, on the same rows and seeds:

* router types trained here (``--router knn --router mlp ...``, or ``all``), with the
  trainer's own ``fit``, feature pipeline and metrics, so a number is what the trainer logs;
* the plain kNN baseline (k = 200, uniform vote, on the packaged MiniLM): what a router must
  beat to be worth its complexity;
* ``random``, and any bundle (``--bundle DIR``, verified first) or registered version
  (``--model NAME``), each featurised by its own pipeline.

Splits: one dataset (``--test X``, or ``X:train`` / ``X:test`` halves) is split afresh per
seed (``--test-fraction``, default a half). An explicit pair (``--train A --test B``) keeps
its test set; each seed trains on a seeded ``--train-fraction`` (default 90%) of A, so the
spread says how much a result depends on the training draw.

Metrics: for a strong/weak pair (two models, or ``--strong``/``--weak``) RouteLLM's APGR,
CPT(50%), CPT(80%); over all candidates, on fully graded rows, the quality-cost curve's AIQ,
quality at 50% of the best single model's cost (λ calibrated on the test rows' predictions,
never their labels), the best quality, and the best-single-model and oracle references.
Every metric is reported per seed and as mean ± sd.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from routeiq.errors import ConfigError
from routeiq.routing.assessment import Evaluation, evaluate, random_baseline
from routeiq.routing.datasets import ModelPrice, RoutingDataset, load_csv, load_named
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import (
    SPEC_FILE,
    Featurizer,
    minilm_pipeline,
    open_pipeline,
    read_pipeline,
)
from routeiq.routing.prepare import (
    DataError,
    PreparedData,
    prepare_split,
    prepare_train_test,
    subsample_train,
)
from routeiq.routing.routers import ROUTER_TYPES, FitContext, KNNRouter, router_class

from routeiq_cli.eval_report import EvalReport, SeedResult

F64 = NDArray[np.float64]

BASELINE = "baseline-knn200-minilm"
ALL_TYPES = ("knn", "svm", "mlp", "mf")


@dataclass(frozen=True)
class DataSpec:
    """How to read a dataset argument."""

    prompt_column: str = "prompt"
    models: tuple[str, ...] | None = None
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    cost_model: str = "tokens"  # routeiq.routing.prepare.COST_MODELS


def read_prices(path: Path) -> dict[str, ModelPrice]:
    """A prices file: JSON ``{"model": [input, output]}`` or LLMRouter's
    ``{"model": {"input_price": .., "output_price": ..}}``, USD per million tokens."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read prices from {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected an object of model -> prices")
    out = {}
    for name, value in raw.items():
        try:
            if isinstance(value, dict):
                out[name] = ModelPrice(float(value["input_price"]), float(value["output_price"]))
            else:
                inp, outp = value
                out[name] = ModelPrice(float(inp), float(outp))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path}: prices of {name!r} must be [input, output] or "
                "{input_price, output_price} in USD per million tokens"
            ) from exc
    return out


def load_dataset(spec: str, data: DataSpec) -> tuple[RoutingDataset, str]:
    """``NAME`` or ``FILE.csv``, optionally ``:train`` / ``:test`` (a seeded half, the part
    returned second); the dataset's prices overridden by ``data.prices``."""
    name, part = spec, ""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in {"train", "test"}:
        name, part = head, tail
    if name.endswith(".csv"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"no such file: {path}")
        ds = load_csv(path, prompt_column=data.prompt_column, models=data.models)
    else:
        ds = load_named(name)
    if data.prices:
        ds = replace(ds, prices={**ds.prices, **data.prices})
    return ds, part


Preparer = Callable[[FeatureStore, int], PreparedData]


def plan_splits(
    test_spec: str,
    train_spec: str | None,
    data: DataSpec,
    *,
    test_fraction: float,
    train_fraction: float,
    strong: str | None,
    weak: str | None,
) -> tuple[Preparer, str, str]:
    """A function (feature store, seed) → the seed's ``PreparedData``, and its description."""
    test_ds, test_part = load_dataset(test_spec, data)
    # What both kinds of split take: the pair, the candidates and how requests are priced.
    options: dict[str, Any] = {
        "strong": strong,
        "weak": weak,
        "models": data.models,
        "cost_model": data.cost_model,
    }
    if train_spec is None or _base(train_spec) == _base(test_spec):
        if train_spec is not None and test_part == "":
            raise ConfigError("--train and --test name the same data: use X:train and X:test")

        def per_seed(store: FeatureStore, seed: int) -> PreparedData:
            return prepare_split(
                test_ds, store=store, validation_fraction=test_fraction, seed=seed, **options
            )

        split = f"a fresh {1 - test_fraction:.0%}/{test_fraction:.0%} split per seed"
        return per_seed, test_ds.name, split
    train_ds, _ = load_dataset(train_spec, data)

    def fixed(store: FeatureStore, seed: int) -> PreparedData:
        base = prepare_train_test(train_ds, test_ds, store=store, seed=seed, **options)
        if train_fraction >= 1.0:
            return base
        return subsample_train(base, fraction=train_fraction, seed=seed)

    split = (
        f"train {train_ds.name} ({train_fraction:.0%} seeded subsample per seed), "
        f"test {test_ds.name}"
    )
    return fixed, f"{train_ds.name} → {test_ds.name}", split


def _base(spec: str) -> str:
    head, sep, tail = spec.rpartition(":")
    return head if sep and tail in {"train", "test"} else spec


# The plain kNN every router is compared with: 200 neighbours by cosine similarity of the
# features themselves (no subspace, exact search), each neighbour one vote.
BASELINE_PARAMS = {"k": 200, "weighting": "uniform", "dims": 0, "coarse_dims": 0}


def baseline_router(data: PreparedData, seed: int) -> KNNRouter:
    """The plain kNN every router is compared with (``BASELINE_PARAMS``)."""
    return KNNRouter.fit(data.train, BASELINE_PARAMS, ctx=FitContext(seed=seed))


def run_eval(
    *,
    test_spec: str,
    train_spec: str | None,
    routers: Sequence[str],
    params: Mapping[str, Mapping[str, Any]],
    featurizer: Featurizer,
    cache_dir: Path,
    data: DataSpec = DataSpec(),
    seeds: int = 5,
    test_fraction: float = 0.5,
    train_fraction: float = 0.9,
    strong: str | None = None,
    weak: str | None = None,
    baseline: bool = True,
    bundles: Mapping[str, Any] | None = None,
    out: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> EvalReport:
    """Train and score every router on every seed's split (see the module docstring)."""
    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    for kind in routers:
        router_class(kind)  # unknown types fail before any work
    prepare, name, split = plan_splits(
        test_spec,
        train_spec,
        data,
        test_fraction=test_fraction,
        train_fraction=train_fraction,
        strong=strong,
        weak=weak,
    )
    store = FeatureStore(cache_dir=cache_dir, featurizer=featurizer)
    minilm = (
        store
        if featurizer.id == minilm_pipeline().id
        else FeatureStore(cache_dir=cache_dir, featurizer=minilm_pipeline())
        if baseline
        else None
    )
    labels = [*routers, *([BASELINE] if baseline else []), "random", *(bundles or {})]
    results: list[SeedResult] = []
    references: dict[str, Any] = {}
    curves: list[Path] = []
    first: PreparedData | None = None
    for seed in range(seeds):
        try:
            prepared = prepare(store, seed)
        except DataError as exc:
            raise ConfigError(str(exc)) from exc
        first = first or prepared
        evals: dict[str, Evaluation] = {}
        for kind in routers:
            log(f"seed {seed}: training {kind} on {len(prepared.train)} rows")
            fitted = router_class(kind).fit(
                prepared.train, dict(params.get(kind, {})), ctx=FitContext(seed=seed)
            )
            pred = fitted.predict(prepared.validation.embeddings, prepared.validation.texts)
            evals[kind] = evaluate(
                kind, _columns(pred, fitted.models, prepared), prepared, cost_weight=0.0
            )
        if minilm is not None:
            base = prepare(minilm, seed)
            knn = baseline_router(base, seed)
            pred = knn.predict(base.validation.embeddings)
            evals[BASELINE] = evaluate(BASELINE, pred, base, cost_weight=0.0)
        evals["random"] = random_baseline(prepared, seed=seed, cost_weight=0.0)
        for label, bundle in (bundles or {}).items():
            own = FeatureStore(cache_dir=cache_dir, featurizer=bundle.featurizer)
            rows = prepare(own, seed)
            pred = bundle.router.predict(rows.validation.embeddings, rows.validation.texts)
            evals[label] = evaluate(
                label, _columns(pred, bundle.manifest.models, rows), rows, cost_weight=0.0
            )
        results.append(
            SeedResult(seed, len(prepared.validation), {k: v.metrics for k, v in evals.items()})
        )
        if seed == 0:
            references = _references(evals, prepared)
            if out is not None:
                curves = _plots(list(evals.values()), out, name)
    assert first is not None
    pair = (
        (first.strong, first.weak)
        if len(first.models) == 2 or strong is not None or weak is not None
        else None
    )
    return EvalReport(
        dataset=name,
        features=featurizer.id,
        cost_model=data.cost_model,
        models=first.models,
        pair=pair,
        split=split,
        seeds=results,
        references=references,
        labels=labels,
        curves=curves,
    )


def _columns(pred: Any, models: Sequence[str], data: PreparedData) -> F64:
    """Predictions in the data's candidate order (``ConfigError`` if one is not scored)."""
    missing = sorted(set(data.models) - set(models))
    if missing:
        raise ConfigError(f"the router does not score {missing}")
    cols = [list(models).index(m) for m in data.models]
    return np.asarray(pred, dtype=np.float64)[:, cols]


def _references(evals: Mapping[str, Evaluation], data: PreparedData) -> dict[str, Any]:
    multi = next((e.multi for e in evals.values() if e.multi is not None), None)
    if multi is None:
        return {}
    best_cost, best_quality = multi.singles[multi.best_single]
    return {
        "seed": 0,
        "best_single": {"model": multi.best_single, "quality": best_quality, "cost": best_cost},
        "oracle": {"quality": multi.oracle_quality, "cost": multi.oracle_cost},
        "singles": {m: {"cost": c, "quality": q} for m, (c, q) in multi.singles.items()},
        "rows": len(data.validation),
    }


def _plots(evals: list[Evaluation], out: Path, name: str) -> list[Path]:
    from routeiq.routing.plots import plot_cost_quality, plot_strong_weak

    stem = name.replace("/", "_").replace(" ", "").replace("→", "-to-")
    paths = [plot_strong_weak(evals, out / f"{stem}-strong-weak.png", title=f"{name} (seed 0)")]
    if any(e.multi is not None for e in evals):
        paths.append(
            plot_cost_quality(evals, out / f"{stem}-cost-quality.png", title=f"{name} (seed 0)")
        )
    return paths


def held_out_quality(
    bundle: Any, spec: str, *, samples: int = 500, seed: int = 0, cache_dir: Path
) -> tuple[Evaluation, dict[str, Any]]:
    """A bundle on a fixed held-out set (``X:test``, seed 0), with bootstrap CIs for a pair:
    what ``make demo`` reports for the router the loop trained."""
    from routeiq.routing.evaluation import bootstrap_quality

    prepare, _, _ = plan_splits(
        spec, None, DataSpec(), test_fraction=0.5, train_fraction=1.0, strong=None, weak=None
    )
    rows = prepare(FeatureStore(cache_dir=cache_dir, featurizer=bundle.featurizer), seed)
    pred = _columns(
        bundle.router.predict(rows.validation.embeddings, rows.validation.texts),
        bundle.manifest.models,
        rows,
    )
    result = evaluate(bundle.version, pred, rows, cost_weight=0.0)
    extra: dict[str, Any] = {}
    if len(rows.models) == 2:
        q = rows.validation.quality
        s, w = rows.strong_index, rows.weak_index
        extra = bootstrap_quality(pred[:, s] - pred[:, w], q[:, s], q[:, w], samples=samples)
    return result, extra


def load_bundles(
    bundle_dirs: Sequence[Path],
    verify: tuple[str, str] | None,
    model: str | None,
    version: str | None,
) -> dict[str, Any]:
    """Bundles to score, verified as a gateway verifies them (signature, hashes, probes)."""
    from routeiq.routing.bundle import load_bundle, run_probes, verifier_from

    out: dict[str, Any] = {}
    for folder in bundle_dirs:
        if verify is None:
            raise ConfigError("a bundle folder is verified before use: pass --verify-key")
        bundle = load_bundle(folder, verifier_from(*verify))
        run_probes(bundle)
        out[f"bundle:{bundle.manifest.name}/{bundle.version}"] = bundle
    if model is not None:
        from routeiq_cli.trainer import trainer_services

        with trainer_services() as services:
            registry = services.ops.registry
            info = registry.get(model, version) if version else registry.champion(model)
            if info is None:
                raise ConfigError(f"{model} has no champion; name a --version")
            tmp = Path(tempfile.mkdtemp(prefix="routeiq-eval-"))
            bundle = services.ops.load(info, tmp / "bundle")
        out[f"{model}/{info.version}"] = bundle
    return out


def pipeline_for(kind: str, *, features_dir: Path | None, cache_dir: Path) -> Featurizer:
    """``--features-dir`` if given (a saved pipeline), else ``kind`` (built once in the
    cache: the static encoder is distilled from the packaged MiniLM on first use)."""
    if features_dir is not None:
        if not (features_dir / SPEC_FILE).is_file():
            raise ConfigError(f"{features_dir} holds no feature pipeline ({SPEC_FILE})")
        return read_pipeline(features_dir)
    return open_pipeline(kind, folder=cache_dir / "features" / kind)


def known_types() -> list[str]:
    return sorted(ROUTER_TYPES)
