"""`routeiq`: the operator CLI (local stack, topics, schemas).

This is the CLI's composition root: it loads settings once and hands clients to the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.topics import TOPICS
from routeiq.errors import IncompatibleSchemaError, RouteIQError
from routeiq.kafka import apply_topics, make_admin

from routeiq_cli import labeling
from routeiq_cli import schemas as schema_ops
from routeiq_cli.models import model
from routeiq_cli.report import report
from routeiq_cli.stack import runner
from routeiq_cli.stack.settings import StackSettings, repo_root


def _settings() -> StackSettings:
    return StackSettings.load()


@click.group()
def cli() -> None:
    """RouteIQ operator commands."""


# ---------------------------------------------------------------- stack


@cli.group()
def stack() -> None:
    """The native local stack (Kafka, registry, S3, Redis, MLflow) under supervisord."""


@stack.command("up")
def stack_up() -> None:
    """Install what is missing and start everything, health-gated, in dependency order."""
    runner.up(_settings())


@stack.command("down")
def stack_down() -> None:
    """Stop everything; data is kept."""
    runner.down(_settings())


@stack.command("status")
def stack_status() -> None:
    """Show each component's state and health (exit 1 if any is unhealthy)."""
    if not runner.status(_settings()):
        sys.exit(1)


@stack.command("clean")
def stack_clean() -> None:
    """Stop everything and delete all state (topics, messages, schemas, objects, runs)."""
    runner.clean(_settings())


@stack.command("endpoints")
def stack_endpoints() -> None:
    """Print where everything listens."""
    click.echo(runner.endpoints_table(_settings()))


# ---------------------------------------------------------------- topics


@cli.group()
def topics() -> None:
    """Topics declared in routeiq.contracts.topics."""


@topics.command("apply")
def topics_apply() -> None:
    """Create missing topics and align configs (idempotent; never deletes)."""
    for change in apply_topics(make_admin(_settings().kafka), TOPICS):
        click.echo(f"{change.action:<10} {change.name} {change.details}".rstrip())


@topics.command("list")
def topics_list() -> None:
    """Show the declaration."""
    for spec in TOPICS:
        click.echo(
            f"{spec.name:<34} partitions={spec.partitions} key={spec.key!r} "
            f"subject={spec.value_subject} {spec.compatibility.value} {spec.configs or ''}"
        )


# ---------------------------------------------------------------- schemas


@cli.group()
def schemas() -> None:
    """Avro contracts in schemas/ and the schema registry."""


@schemas.command("register")
def schemas_register() -> None:
    """Register every released version (and an unreleased working copy) in order."""
    client = SchemaRegistryClient(_settings().registry.client_config())
    for result in schema_ops.register_all(client, TOPICS):
        verb = "registered" if result.registered else "present"
        click.echo(f"{verb:<10} {result.subject} {result.label} id={result.schema_id}")


@schemas.command("check")
@click.option("--offline", is_flag=True, help="Only check against released files.")
def schemas_check(offline: bool) -> None:
    """Working copies against every released version and the running registry."""
    registry_url = None if offline else _settings().registry.url
    failed = False
    for finding in schema_ops.check(TOPICS, registry_url):
        failed = failed or not finding.ok
        click.echo(f"{'ok  ' if finding.ok else 'FAIL'} {finding.subject}: {finding.message}")
    if failed:
        sys.exit(1)


@schemas.command("release")
def schemas_release() -> None:
    """Freeze changed working copies as new released versions (after checking them)."""
    written = schema_ops.release(TOPICS)
    for path in written:
        click.echo(f"released {path}")
    if not written:
        click.echo("nothing to release: every working copy equals its latest version")


@schemas.command("docs")
@click.option(
    "--output", type=click.Path(path_type=Path), default=None, help="Default: docs/contracts.md"
)
def schemas_docs(output: Path | None) -> None:
    """Regenerate the Markdown table of fields per contract."""
    target = output or repo_root() / "docs" / "contracts.md"
    target.write_text(schema_ops.render_docs(TOPICS))
    click.echo(f"wrote {target}")


# ---------------------------------------------------------------- traffic


def _dataset_part(name: str, part: str, seed: int) -> tuple[Any, list[int]]:
    from routeiq.routing.datasets import load_named

    ds = load_named(name)
    if part == "all":
        return ds, list(range(len(ds)))
    train, test = ds.split(test_fraction=0.5, seed=seed)
    chosen = train if part == "train" else test
    index = {pid: i for i, pid in enumerate(ds.ids)}
    return ds, [index[pid] for pid in chosen.ids]


@cli.command("replay")
@click.option("--gateway", default=None, help="Gateway base URL (default: the local stack's).")
@click.option(
    "--dataset",
    default="gsm8k",
    show_default=True,
    help="gsm8k, mt_bench, llmrouter-train, llmrouter-test or a CSV file.",
)
@click.option(
    "--part",
    type=click.Choice(["train", "test", "all"]),
    default="all",
    show_default=True,
    help="Which half of a seeded 50/50 split to send.",
)
@click.option("--split-seed", default=0, show_default=True)
@click.option("--limit", type=int, default=None, help="At most this many prompts.")
@click.option("--rate", type=float, default=None, help="Requests per second (default: max).")
@click.option("--concurrency", default=8, show_default=True)
@click.option(
    "--feedback/--no-feedback",
    default=True,
    show_default=True,
    help="Post the recorded (or judged) quality of each answer as feedback.",
)
@click.option(
    "--shadow-fraction",
    default=0.0,
    show_default=True,
    help="Share of requests that also get every other candidate's graded outcome.",
)
@click.option("--upstream", default=None, help="Upstream for shadow calls (default: stack's).")
@click.option(
    "--judge-model",
    default=None,
    help="Grade answers with this LiteLLM model (blind) instead of recorded labels.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--tag", default=None, help="Sent as x-routeiq-team, to find these requests.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def replay_command(
    gateway: str | None,
    dataset: str,
    part: str,
    split_seed: int,
    limit: int | None,
    rate: float | None,
    concurrency: int,
    feedback: bool,
    shadow_fraction: float,
    upstream: str | None,
    judge_model: str | None,
    seed: int,
    tag: str | None,
    as_json: bool,
) -> None:
    """Drive benchmark traffic through the gateway, posting graded feedback."""
    import asyncio
    import json as json_

    from tqdm import tqdm

    from routeiq_cli.replay import Replayer

    settings = _settings()
    ds, rows = _dataset_part(dataset, part, split_seed)
    rows = rows[:limit] if limit else rows
    with tqdm(total=len(rows), desc=f"replay {dataset}/{part}", unit="req", disable=as_json) as bar:
        replayer = Replayer(
            ds,
            gateway=gateway or f"http://{settings.host}:{settings.gateway_port}",
            upstream=upstream or f"http://{settings.host}:{settings.upstream_port}/v1",
            concurrency=concurrency,
            rate=rate,
            feedback=feedback,
            shadow_fraction=shadow_fraction,
            judge_model=judge_model,
            seed=seed,
            headers={"x-routeiq-team": tag} if tag else None,
            progress=bar,
        )
        stats = asyncio.run(replayer.run(rows))
    summary = stats.as_dict(ds.strong)
    if as_json:
        click.echo(json_.dumps(summary, indent=2))
    else:
        click.echo(
            f"{stats.ok}/{stats.sent} served ({stats.errors} errors) in {stats.elapsed_s:.1f}s; "
            f"mean quality {stats.mean_quality:.3f}; cost ${stats.cost_usd:.4f} "
            f"(${stats.cost_per_1k:.3f} per 1k); strong calls {stats.strong_pct(ds.strong):.1f}%"
        )
        click.echo(f"models: {dict(stats.by_model)}; router versions: {dict(stats.by_version)}")
        click.echo(f"feedback posted: {stats.feedback} (+{stats.shadow} shadow)")
    for sample in stats.error_samples[:5]:
        click.echo(f"  error: {sample}", err=True)
    if stats.errors:
        sys.exit(1)


@cli.command("eval")
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
    help="Router type(s) to train: knn, svm, mlp, mf, bert, or all (knn svm mlp mf). Default: knn.",
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
    type=click.Choice(["static", "minilm", "minilm+sketch"]),
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
    import json as json_

    from routeiq_cli.evaluate import (
        ALL_TYPES,
        DataSpec,
        load_bundles,
        pipeline_for,
        read_prices,
        render,
        run_eval,
        to_json,
    )
    from routeiq_cli.stack.secrets import load_or_create

    settings = _settings()
    kinds = [k for r in (routers or ("knn",)) for k in (ALL_TYPES if r == "all" else (r,))]
    parsed: dict[str, dict[str, object]] = {}
    for item in params:
        key, sep, raw = item.partition("=")
        kind, dot, name = key.partition(".")
        if not sep or not dot:
            raise click.BadParameter(f"{item!r}: expected TYPE.KEY=VALUE", param_hint="--param")
        try:
            parsed.setdefault(kind, {})[name] = json_.loads(raw)
        except json_.JSONDecodeError:
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


@cli.group()
def features() -> None:
    """Feature pipelines: what routers read, shared by gateways and trainers."""


@features.command("build")
@click.option(
    "--kind",
    type=click.Choice(["static", "minilm", "minilm+sketch"]),
    default="static",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder to write (default: <state>/features/<kind>).",
)
@click.option("--sketch-seed", default=0, show_default=True, help="Keys the n-gram hashing.")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="static: tokens read per prompt (default 256).",
)
@click.option(
    "--tail-tokens",
    type=click.IntRange(min=0),
    default=None,
    help="static: of those, how many a long prompt gives from its end (default 128; 0: "
    "the first max-tokens only, as pipelines before 2026-12).",
)
def features_build(
    kind: str, out: Path | None, sketch_seed: int, max_tokens: int | None, tail_tokens: int | None
) -> None:
    """Distil the static encoder from the packaged MiniLM (offline) and save the pipeline."""
    import time

    from routeiq.routing.featurizer import open_pipeline

    folder = out or _settings().state / "features" / kind
    started = time.monotonic()
    tokens = {"max_tokens": max_tokens, "tail_tokens": tail_tokens}
    pipeline = open_pipeline(
        kind,
        folder=folder,
        sketch_seed=sketch_seed,
        **{k: v for k, v in tokens.items() if v is not None},
    )
    if kind != "static":
        pipeline.save(folder)
    click.echo(
        f"{pipeline.id}: {pipeline.dimension} features in {folder} "
        f"({time.monotonic() - started:.1f}s)"
    )


@features.command("show")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
def features_show(folder: Path) -> None:
    """A pipeline's spec, after checking its files against it."""
    import json as json_

    from routeiq.routing.featurizer import read_pipeline

    click.echo(json_.dumps(read_pipeline(folder).spec.to_dict(), indent=2))


@cli.command("demo")
@click.option(
    "--train-queries",
    default=2000,
    show_default=True,
    help="With 9 candidates: how many dcrouter_train prompts to replay (0: all 5,608).",
)
def demo_command(train_queries: int) -> None:
    """The closed loop on the running stack: traffic → shards → training → hot-swap."""
    from routeiq_cli.demo import run_demo

    run_demo(_settings(), train_queries=train_queries)


cli.add_command(labeling.retrain)  # routeiq retrain request
cli.add_command(labeling.backfill)  # routeiq backfill jaeger
cli.add_command(model)  # routeiq model list / promote / rollback
cli.add_command(report)  # routeiq report


def main() -> None:
    """Entry point: RouteIQ errors print their reason and exit 1, without a traceback."""
    try:
        cli(standalone_mode=True)
    except IncompatibleSchemaError as exc:
        click.echo(f"error: {exc}", err=True)
        for reason in exc.reasons:
            click.echo(f"  - {reason}", err=True)
        sys.exit(1)
    except RouteIQError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
