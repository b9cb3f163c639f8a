"""MLproject entry points (see the repo's MLproject): ``generate_synthetic``, ``prepare_data``,
``train``, ``evaluate``, ``deploy`` and ``promote``.

``mlflow run . -e train --env-manager local -P model_name=... -P dataset=gsm8k`` runs
``train`` in this environment; MLflow creates the run and passes its id in ``MLFLOW_RUN_ID``,
and the trainer logs into that run (nesting one child run per router type) instead of
opening its own. Everything else (registration, signed bundle in S3, gate, announcement) is
exactly what the worker does for a request from Kafka. Settings come from the same
``ROUTEIQ_TRAINER_*`` variables; ``MLFLOW_TRACKING_URI`` is used when the trainer's own
tracking URI is not set, so the run and the registry are on the same server.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import click
from routeiq.routing.assessment import evaluate as score
from routeiq.routing.assessment import predict, random_baseline
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.plots import plot_strong_weak
from routeiq.service import run_command

from routeiq_trainer.config import load_settings
from routeiq_trainer.core.requests import TrainRequest, parse_kv, resolve_options
from routeiq_trainer.data import DataLoader
from routeiq_trainer.project_shards import generate_synthetic, prepare_data
from routeiq_trainer.wiring import build_registry, build_services


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _operator() -> str:
    try:
        return f"mlflow-project@{getpass.getuser()}"
    except (KeyError, OSError):
        return "mlflow-project"


def _request(
    request_id: str,
    model_name: str,
    *,
    dataset: str,
    manifests: str,
    params: str,
    router_types: tuple[str, ...] = (),
) -> TrainRequest:
    """A manual request: the entry point's data options as the worker would get them."""
    merged = parse_kv(_split(params))
    if dataset:
        merged["dataset"] = dataset
    return TrainRequest(
        request_id=request_id,
        model_name=model_name,
        requested_by=_operator(),
        requested_at_ms=int(time.time() * 1000),
        router_types=router_types,
        reason="MANUAL",
        shard_manifests=tuple(_split(manifests)),
        params=merged,
    )


@click.group()
def project() -> None:
    """RouteIQ trainer entry points for MLflow projects."""


@project.command()
@click.option("--model-name", required=True, help="Router name (MLflow registered model).")
@click.option("--dataset", default="", help="gsm8k | mt_bench | llmrouter-train | FILE.csv")
@click.option("--manifests", default="", help="Comma-separated shard manifest keys.")
@click.option("--router-types", default="", help="Comma-separated, e.g. knn,mlp,bert.")
@click.option("--params", default="", help="Comma-separated key=value, e.g. knn.k=20,seed=1.")
@click.option("--request-id", default="", help="Idempotency key (default: a new one).")
def train(
    model_name: str, dataset: str, manifests: str, router_types: str, params: str, request_id: str
) -> None:
    """Train from shards (or a dataset file), register, gate and announce."""
    settings = load_settings()
    services = build_services(settings)
    assert services.pipeline is not None
    request = _request(
        request_id or f"manual-{uuid.uuid4()}",
        model_name,
        dataset=dataset,
        manifests=manifests,
        params=params,
        router_types=tuple(_split(router_types)),
    )
    try:
        outcome = services.pipeline.process(request, parent_run_id=os.environ.get("MLFLOW_RUN_ID"))
    finally:
        services.close()
    click.echo(
        json.dumps(
            {
                "request_id": outcome.request_id,
                "model_name": outcome.info.name,
                "version": outcome.version,
                "status": outcome.status,
                "mlflow_version": outcome.mlflow_version,
                "router_type": outcome.info.router_type,
                "gate": outcome.gate.reason if outcome.gate else None,
                "announced": outcome.announced,
                "metrics": outcome.metrics,
            },
            indent=2,
        )
    )


@project.command("evaluate")
@click.option("--model-name", default="", help="Registered router name.")
@click.option(
    "--version", "ref", default="champion", help="Bundle version, MLflow number or champion."
)
@click.option("--bundle-dir", default="", help="A local bundle folder instead (verified).")
@click.option("--dataset", default="gsm8k", help="gsm8k | mt_bench | llmrouter-test | FILE.csv")
@click.option("--validation-fraction", default=0.5, type=float, help="Newest share to score.")
@click.option("--seed", default=0, type=int)
def evaluate_cmd(
    model_name: str, ref: str, bundle_dir: str, dataset: str, validation_fraction: float, seed: int
) -> None:
    """Score a registered version (or a local bundle) on a dataset's validation split."""
    from routeiq.routing.bundle import load_bundle

    settings = load_settings()
    store_services = build_services(settings, pipeline=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if bundle_dir:
                bundle = load_bundle(Path(bundle_dir), settings.verifier())
                label = f"{bundle.manifest.name} {bundle.manifest.version}"
            else:
                if not model_name:
                    raise click.UsageError("give --model-name (and --version) or --bundle-dir")
                info = store_services.registry.get(model_name, ref)
                bundle = store_services.ops.load(info, Path(tmp) / "bundle")
                label = f"{model_name} {info.version}"
            request = TrainRequest(
                request_id=f"evaluate-{uuid.uuid4()}",
                model_name=bundle.manifest.name,
                requested_by=_operator(),
                requested_at_ms=int(time.time() * 1000),
                params={
                    "dataset": dataset,
                    "validation_fraction": str(validation_fraction),
                    "seed": str(seed),
                },
            )
            options = resolve_options(request, settings)
            loader = replace(
                DataLoader.from_settings(
                    settings,
                    store=store_services.store,
                    # The dataset is featurised by the bundle's own pipeline.
                    embeddings=FeatureStore(
                        cache_dir=settings.cache_dir, featurizer=bundle.featurizer
                    ),
                ),
                # Scoring a stored bundle: any dataset with rows on both sides will do.
                min_train_examples=1,
                min_validation_examples=2,
            )
            data = loader.load(request, options)
            result = score(label, predict(bundle.router, data), data, cost_weight=0.0)
            baseline = random_baseline(data, seed=seed, cost_weight=0.0)
            run_id = os.environ.get("MLFLOW_RUN_ID")
            if run_id:
                registry = build_registry(settings)
                registry.log_metrics(run_id, result.metrics)
                registry.log_metrics(
                    run_id, {f"random.{k}": v for k, v in baseline.metrics.items()}
                )
                png = plot_strong_weak([result, baseline], Path(tmp) / "curve.png", title=label)
                registry.log_artifact(run_id, png, "plots")
    finally:
        store_services.close()
    click.echo(json.dumps({"router": label, "dataset": data.source, **result.metrics}, indent=2))


@project.command()
@click.option("--model-name", required=True, help="Registered router name.")
@click.option("--version", "ref", required=True, help="Bundle version or MLflow number.")
@click.option("--dataset", default="", help="Score on a dataset instead of the shards.")
@click.option("--manifests", default="", help="Comma-separated shard manifest keys.")
@click.option("--params", default="", help="Comma-separated key=value (validation_fraction=…).")
def deploy(model_name: str, ref: str, dataset: str, manifests: str, params: str) -> None:
    """Gate a registered version against the champion and announce it if it passes."""
    settings = load_settings()
    services = build_services(settings)
    assert services.pipeline is not None
    request = _request(
        f"deploy-{uuid.uuid4()}", model_name, dataset=dataset, manifests=manifests, params=params
    )
    try:
        outcome = services.pipeline.deploy(request, ref)
    finally:
        services.close()
    gate = outcome.gate
    click.echo(
        json.dumps(
            {
                "model_name": outcome.info.name,
                "version": outcome.version,
                "gate": gate.reason if gate else None,
                "announced": outcome.announced,
            },
            indent=2,
        )
    )
    if not outcome.announced:
        sys.exit(3)


@project.command()
@click.option("--model-name", required=True)
@click.option("--version", "ref", required=True, help="Bundle version or MLflow number.")
def promote(model_name: str, ref: str) -> None:
    """Force a version to champion and announce it (bypasses the gate)."""
    settings = load_settings()
    services = build_services(settings, pipeline=False)
    try:
        done = services.ops.promote(model_name, ref, by=_operator())
    finally:
        services.close()
    click.echo(f"promoted {model_name} {done.version.version} (was {done.previous})")


project.add_command(generate_synthetic)
project.add_command(prepare_data)


def main() -> None:
    """Entry point: invalid configuration exits 2 and other RouteIQ errors 1, each printing
    its reason without a traceback (as the service's own start does)."""
    run_command(project, config_exits_2=True)


if __name__ == "__main__":
    main()
