"""`mlflow run . -e train --env-manager local` against the running MLflow: the project's run
is the trainer's run, and the result is registered, stored, signed and announced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from integration.trainer.helpers import expected_device, settings_env
from mlflow import MlflowClient

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


def test_mlflow_run_trains_registers_and_announces(harness_factory) -> None:
    harness = harness_factory()
    name = harness.model_name
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_TRAINER_")}
    env.update(settings_env(harness.settings))
    env["MLFLOW_TRACKING_URI"] = harness.settings.mlflow_tracking_uri
    # The MLproject's commands run `python`: this environment's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    experiment = f"routeiq/{name}"

    done = _mlflow_run(
        "train",
        {
            "model_name": name,
            "dataset": "gsm8k",
            "router_types": "knn",
            "params": "knn.k=30,validation_fraction=0.3",
        },
        env,
        experiment,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (version,) = harness.services.registry.versions(name)
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
