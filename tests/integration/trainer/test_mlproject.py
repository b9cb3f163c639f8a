"""`mlflow run . -e train --env-manager local` against the running MLflow: the project's run
is the trainer's run, and the result is registered, stored, signed and announced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from integration.trainer.helpers import expected_device, settings_env
from mlflow import MlflowClient
from routeiq.shards import list_manifests, read_tables
from routeiq.storage import ArtifactStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _mlflow_run(entry: str, params: dict[str, str], env: dict[str, str], experiment: str):
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(REPO),
        "-e",
        entry,
        "--env-manager",
        "local",
        "--experiment-name",
        experiment,
    ]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)


def _project_env(harness) -> dict[str, str]:
    """This environment with the harness's trainer settings, as ``mlflow run`` children see it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_TRAINER_")}
    env.update(settings_env(harness.settings))
    env["MLFLOW_TRACKING_URI"] = harness.settings.mlflow_tracking_uri
    # The MLproject's commands run `python`: this environment's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return env


def test_mlflow_run_trains_registers_and_announces(harness_factory) -> None:
    harness = harness_factory()
    name = harness.model_name
    env = _project_env(harness)
    experiment = f"routeiq/{name}"

    version = _train_knn(
        harness, env, experiment, dataset="gsm8k", params=",validation_fraction=0.3"
    )
    assert version.is_champion
    assert version.router_type == "knn"
    assert version.tags["routeiq.source"] == "dataset:gsm8k"
    # Empty parameters arrive empty (MLflow quotes values itself): a fresh request id.
    assert version.tags["routeiq.request_id"].startswith("manual-")

    client = MlflowClient(tracking_uri=harness.settings.mlflow_tracking_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        filter_string="tags.`mlflow.project.entryPoint` = 'train'",
    )
    # The run MLflow created for the project is the one the version came from.
    assert version.run_id == run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params["knn.k"] == "30"
    assert run.data.params["device"] == expected_device()
    assert run.data.params["logging_policy"] == "simulated-uniform"
    assert run.data.metrics["apgr"] > run.data.metrics["random.apgr"]
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"
    )
    assert [c.data.tags["routeiq.router_type"] for c in children] == ["knn"]
    (announcement,) = harness.read("announcement", expect=1)
    assert announcement["version"] == version.version

    # evaluate: the champion on GSM8K, logged into its own project run.
    done = _mlflow_run("evaluate", {"model_name": name, "dataset": "gsm8k"}, env, experiment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert '"apgr"' in done.stdout


def _train_knn(harness, env: dict[str, str], experiment: str, params: str = "", **data: str):
    """``train`` a kNN router (k = 30) from ``data`` (dataset or manifests); the one version."""
    entry = {"model_name": harness.model_name, "router_types": "knn", "params": "knn.k=30" + params}
    done = _mlflow_run("train", {**entry, **data}, env, experiment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (version,) = harness.services.registry.versions(harness.model_name)
    return version


def _json_out(done) -> dict:
    """The entry point's JSON answer: the last block from a line ``{`` to a line ``}`` on
    stdout (MLflow prints its run links after it)."""
    lines = done.stdout.splitlines()
    end = max(i for i, line in enumerate(lines) if line == "}")
    start = max(i for i, line in enumerate(lines[:end]) if line == "{")
    return json.loads("\n".join(lines[start : end + 1]))


def test_synthetic_traffic_trains_then_deploy_gates_and_announces(
    harness_factory, minio_client, private_bucket
) -> None:
    """generate_synthetic → train on its shards (held by a huge margin) → deploy: held again
    under that margin, announced under the default one, refused once it is the champion."""
    bucket = private_bucket
    harness = harness_factory(shards_bucket=bucket)
    name = harness.model_name
    base = _project_env(harness)
    strict = {**base, "ROUTEIQ_TRAINER_GATE_MARGIN": "1.0"}  # nothing beats random by 1.0
    experiment = f"routeiq/{name}"
    params = {"dataset": "gsm8k", "seed": "3", "spacing_s": "30", "shadow_fraction": "0.25"}
    done = _mlflow_run("generate_synthetic", params, base, experiment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    generated = _json_out(done)
    store = ArtifactStore(minio_client)
    table, manifests = read_tables(store, bucket, generated["manifests"])
    assert table.num_rows == generated["rows"] == sum(m.rows for m in manifests) > 1000
    assert set(table.column("strategy").to_pylist()) == {"synthetic-uniform"}
    assert set(table.column("propensity").to_pylist()) == {0.5}
    shadowed = sum(len(m) == 2 for m in table.column("outcome_models").to_pylist())
    assert 0.15 < shadowed / table.num_rows < 0.35
    # Generating again rewrites the same objects: no new rows.
    again = _json_out(_mlflow_run("generate_synthetic", params, base, experiment))
    assert again["manifests"] == generated["manifests"]
    assert len(list_manifests(store, bucket)) == len(generated["manifests"])

    manifests = ",".join(generated["manifests"])
    version = _train_knn(harness, strict, experiment, manifests=manifests)
    assert version.tags["routeiq.gate"] == "held"
    assert not version.is_champion

    deploy = {"model_name": name, "version": version.version}
    done = _mlflow_run("deploy", deploy, strict, experiment)
    assert done.returncode != 0
    assert '"announced": false' in done.stdout
    assert harness.services.registry.champion(name) is None

    done = _mlflow_run("deploy", deploy, base, experiment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _json_out(done)["announced"] is True
    champion = harness.services.registry.champion(name)
    assert champion is not None
    assert champion.version == version.version
    (announcement,) = harness.read("announcement", expect=1)
    assert (announcement["version"], announcement["action"]) == (version.version, "PROMOTE")

    done = _mlflow_run("deploy", deploy, base, experiment)
    assert done.returncode != 0
    assert "already the champion" in done.stderr
