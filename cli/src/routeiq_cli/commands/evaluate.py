"""`routeiq eval`: offline router quality over split seeds (the work is in ``evaluate``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from routeiq_cli.options import FEATURE_KINDS, key_values
from routeiq_cli.stack.settings import StackSettings


@click.command("eval")
@click.option(
    "--test",
    "test_spec",
    required=True,
    help="Test data: gsm8k, mt_bench, llmrouter-test, FILE.csv; X:test for a seeded half.",
)
@click.option(
    "--train",
    "train_spec",
    default=None,
    help="Training data (default: split --test per seed). X:train pairs with X:test.",
)
@click.option(
    "--router",
    "routers",
    multiple=True,
    help=(
        "Router type(s) to train: knn, svm, mlp, mf, bert, hybrid, or all (knn svm mlp mf). "
        "Default: knn."
    ),
)
@click.option(
    "--param", "params", multiple=True, help="Router parameter TYPE.KEY=VALUE (JSON value)."
)
@click.option("--seeds", default=5, show_default=True, help="Split seeds 0..N-1.")
@click.option("--test-fraction", default=0.5, show_default=True, help="One-dataset splits.")
@click.option(
    "--train-fraction", default=0.9, show_default=True, help="Train subsample per seed (A → B)."
)
@click.option("--prompt-column", default="prompt", show_default=True, help="CSV prompt column.")
@click.option("--models", default=None, help="Comma-separated candidate columns (default: all).")
@click.option("--strong", default=None, help="Strong model of the APGR pair.")
@click.option("--weak", default=None, help="Weak model of the APGR pair.")
@click.option(
    "--prices",
    "prices_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help='JSON {"model": [input, output]} USD per million tokens.',
)
@click.option(
    "--features",
    type=FEATURE_KINDS,
    default="static",
    show_default=True,
    help="Feature pipeline for the routers trained here.",
)
@click.option(
    "--features-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="A saved pipeline (routeiq features build) instead of --features.",
)
@click.option(
    "--cost",
    "cost_model",
    type=click.Choice(["tokens", "flat"]),
    default="tokens",
    show_default=True,
    help="tokens: prompt + recorded (or 200) answer tokens at list price; flat: every "
    "request the same size, so it costs its model's price.",
)
@click.option("--no-baseline", is_flag=True, help="Skip the kNN-200-on-MiniLM baseline.")
@click.option(
    "--bundle",
    "bundle_dirs",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    multiple=True,
    help="A local bundle folder to score too (verified first).",
)
@click.option("--model", default=None, help="A registered router (with --version or champion).")
@click.option("--version", default=None)
@click.option(
    "--verify-key", default=None, help="Public key for --bundle (default: the local stack's)."
)
@click.option("--verify-algorithm", default="ed25519", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("eval-results"),
    show_default=True,
    help="Where the curves (PNG) and report.json go.",
)
@click.option("--json", "as_json", is_flag=True)
def eval_command(
    test_spec: str,
    train_spec: str | None,
    routers: tuple[str, ...],
    params: tuple[str, ...],
    seeds: int,
    test_fraction: float,
    train_fraction: float,
    prompt_column: str,
    models: str | None,
    strong: str | None,
    weak: str | None,
    prices_file: Path | None,
    features: str,
    features_dir: Path | None,
    cost_model: str,
    no_baseline: bool,
    bundle_dirs: tuple[Path, ...],
    model: str | None,
    version: str | None,
    verify_key: str | None,
    verify_algorithm: str,
    out: Path,
    as_json: bool,
) -> None:
    """Offline router quality over split seeds: APGR/CPT for pairs, AIQ and quality at a
    budget for N models, against a plain kNN baseline, mean ± sd and per seed."""
    from routeiq_cli.eval_report import render, to_json
    from routeiq_cli.evaluate import (
        ALL_TYPES,
        DataSpec,
        load_bundles,
        pipeline_for,
        read_prices,
        run_eval,
    )
    from routeiq_cli.stack.secrets import load_or_create

    settings = StackSettings.load()
    kinds = [k for r in (routers or ("knn",)) for k in (ALL_TYPES if r == "all" else (r,))]
    parsed: dict[str, dict[str, object]] = {}
    for key, raw in key_values(params, expected="TYPE.KEY=VALUE", key_has="."):
        kind, _, name = key.partition(".")
        try:
            parsed.setdefault(kind, {})[name] = json.loads(raw)
        except json.JSONDecodeError:
            parsed.setdefault(kind, {})[name] = raw
    verify = None
    if bundle_dirs:
        key = verify_key or load_or_create(settings).signing_public
        verify = (verify_algorithm, key)
    cache = settings.state / "eval-cache"
    data = DataSpec(
        prompt_column=prompt_column,
        models=tuple(m.strip() for m in models.split(",") if m.strip()) if models else None,
        prices=read_prices(prices_file) if prices_file else {},
        cost_model=cost_model,
    )
    report = run_eval(
        test_spec=test_spec,
        train_spec=train_spec,
        routers=kinds,
        params=parsed,
        featurizer=pipeline_for(features, features_dir=features_dir, cache_dir=cache),
        cache_dir=cache,
        data=data,
        seeds=seeds,
        test_fraction=test_fraction,
        train_fraction=train_fraction,
        strong=strong,
        weak=weak,
        baseline=not no_baseline,
        bundles=load_bundles(bundle_dirs, verify, model, version),
        out=out,
        log=lambda line: click.echo(line, err=True),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(to_json(report))
    click.echo(to_json(report) if as_json else render(report))
