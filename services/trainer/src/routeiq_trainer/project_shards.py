"""MLproject entry points that write training shards: ``generate_synthetic`` (a benchmark as
simulated traffic) and ``prepare_data`` (the gateway's past decisions, from Jaeger). Both log
to the run ``mlflow run`` opened, when there is one, and print what they wrote as JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, get_args

import click
from routeiq.labeling import LabelPolicy, QualitySource
from routeiq.routing.datasets import load_named
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.oracle import Oracle
from routeiq.traces import TraceQuery

from routeiq_trainer.config import TrainerSettings, load_settings
from routeiq_trainer.data import known_prices
from routeiq_trainer.prepare import ORIGIN, ShardLayout, prepare_from_jaeger
from routeiq_trainer.synthetic import SyntheticPlan, generate
from routeiq_trainer.wiring import build_featurizer, build_registry, build_store

F = TypeVar("F", bound=Callable[..., Any])
SOURCES = get_args(QualitySource)
PREPARE_METRICS = ("decisions", "with_embedding", "with_feedback", "feedback_read", "rows")


def epoch_ms(moment: str) -> int:
    """An ISO 8601 time (UTC when it names no zone) as epoch milliseconds."""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError as exc:
        raise click.BadParameter(f"expected ISO 8601, got {moment!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def shard_options(command: F) -> F:
    """``--window-s``, ``--partitions`` and ``--bucket``: how an entry point cuts its rows into
    shards and where it writes them."""
    options = (
        click.option("--window-s", default=3600, type=int, help="Shard window, as the labeler's."),
        click.option("--partitions", default=1, type=int, help="Shards per window."),
        click.option("--bucket", default="", help="Shards bucket (default: the trainer's)."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _finish(
    settings: TrainerSettings,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    answer: dict[str, Any],
) -> None:
    """Log to the run ``mlflow run`` opened (none when run directly); print the answer."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        registry = build_registry(settings)
        registry.log_params(run_id, params)
        registry.log_metrics(run_id, metrics)
    click.echo(json.dumps(answer, indent=2))


@click.command("generate-synthetic")
@shard_options
@click.option("--dataset", default="gsm8k", help="gsm8k | mt_bench | llmrouter-train | FILE.csv")
@click.option("--seed", default=0, type=int, help="Draws the served models and the order.")
@click.option("--start", default="", help="First event time, ISO 8601 (default: now - span).")
@click.option("--spacing-s", default=1.0, type=float, help="Seconds between two decisions.")
@click.option("--shadow-fraction", default=0.0, type=float, help="Share with every grade.")
@click.option("--limit", default=0, type=int, help="At most this many decisions (0: all).")
def generate_synthetic(
    dataset: str,
    seed: int,
    start: str,
    spacing_s: float,
    window_s: int,
    partitions: int,
    shadow_fraction: float,
    limit: int,
    bucket: str,
) -> None:
    """Write a benchmark, served by a simulated uniform router, as training shards."""
    settings = load_settings()
    ds = load_named(dataset)
    count = min(limit, len(ds)) if limit else len(ds)
    spacing_ms = max(1, round(spacing_s * 1000))
    start_ms = epoch_ms(start) if start else int(time.time() * 1000) - count * spacing_ms
    plan = SyntheticPlan(
        seed=seed,
        start_ms=start_ms,
        spacing_ms=spacing_ms,
        window_ms=window_s * 1000,
        partitions=partitions,
        shadow_fraction=shadow_fraction,
        cost_weight=settings.cost_weight,
        limit=limit,
    )
    features = FeatureStore(cache_dir=settings.cache_dir, featurizer=build_featurizer(settings))
    written = generate(
        ds,
        features=features,
        store=build_store(settings),
        bucket=bucket or settings.shards_bucket,
        prices=known_prices(settings.prices),
        plan=plan,
        query_key=settings.query_key_bytes(),
    )
    rows = sum(m.rows for m in written.values())
    _finish(
        settings,
        params={"dataset": ds.name, "features": features.features_id, "seed": seed},
        metrics={"rows": rows, "shards": len(written)},
        answer={
            "dataset": ds.name,
            "bucket": bucket or settings.shards_bucket,
            "rows": rows,
            "features": features.features_id,
            "manifests": list(written),
        },
    )


@click.command("prepare-data")
@shard_options
@click.option("--hours", default=24.0, type=click.FloatRange(min=0, min_open=True))
@click.option("--end", default="", help="End of the range, ISO 8601 (default: now).")
@click.option("--jaeger-url", default="", help="Jaeger query API (default: the trainer's).")
@click.option("--service", default="", help="The gateway's service name in Jaeger.")
@click.option("--quality-source", default="feedback_or_outcome", type=click.Choice(SOURCES))
@click.option("--cost-weight", default=10.0, type=click.FloatRange(min=0), help="λ, per USD.")
@click.option("--cheap-model", default="", help="The oracle's cheap model (with --strong-model).")
@click.option("--strong-model", default="", help="The oracle's strong model.")
def prepare_data(
    hours: float,
    end: str,
    jaeger_url: str,
    service: str,
    quality_source: QualitySource,
    cost_weight: float,
    cheap_model: str,
    strong_model: str,
    window_s: int,
    partitions: int,
    bucket: str,
) -> None:
    """Label the gateway's decisions in Jaeger, joined with their feedback, into shards."""
    settings = load_settings()
    url = jaeger_url or settings.jaeger_url
    if not url:
        raise click.UsageError("give --jaeger-url or set ROUTEIQ_TRAINER_JAEGER_URL")
    if bool(cheap_model) != bool(strong_model):
        raise click.UsageError("--cheap-model and --strong-model go together")
    end_ms = epoch_ms(end) if end else time.time_ns() // 1_000_000
    policy = LabelPolicy(
        quality_source=quality_source,
        cost_weight=cost_weight,
        oracle=Oracle(cheap_model, strong_model) if cheap_model else None,
    )
    report = prepare_from_jaeger(
        settings,
        jaeger_url=url,
        query=TraceQuery(
            service or settings.jaeger_service,
            start_us=(end_ms - int(hours * 3_600_000)) * 1000,
            end_us=end_ms * 1000,
        ),
        policy=policy,
        layout=ShardLayout(window_ms=window_s * 1000, partitions=partitions, origin=ORIGIN),
        bucket=bucket or settings.shards_bucket,
    )
    summary = report.summary()
    _finish(
        settings,
        params={"jaeger": url, "hours": hours, "end_ms": end_ms},
        metrics={k: summary[k] for k in PREPARE_METRICS},
        answer=summary,
    )
