"""`mlflow run . -e NAME --env-manager local` against the running stack: the project's run is
the trainer's run, and the result is registered, stored, signed and announced; the shard
entry points (``generate_synthetic``, ``prepare_data`` from the stack's Jaeger) write shards
the trainer reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from integration.trainer.helpers import expected_device, settings_env
from mlflow import MlflowClient
from routeiq.shards import list_manifests, read_tables, training_data
from routeiq.storage import ArtifactStore
from support.jaeger import chat, wait_traced

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
    # A fixed first event time (12 hours ago, on the hour), so the second run below writes the
    # same windows: left to its default (now - span) the span moves with the clock and, when
    # the runs straddle a window boundary, the first or last window changes.
    start = datetime.fromtimestamp((time.time() // 3600 - 12) * 3600, tz=UTC).isoformat()
    params = {
        "dataset": "gsm8k",
        "seed": "3",
        "start": start,
        "spacing_s": "30",
        "shadow_fraction": "0.25",
    }
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


def test_prepare_data_labels_the_gateways_traced_decisions_into_shards(
    stack, harness_factory, minio_client, private_bucket
) -> None:
    """Requests through the stack's gateway, half of them graded through ``/v1/feedback``;
    ``prepare_data`` reads their spans back from the stack's Jaeger, joins the grades from the
    feedback topic and writes shards the trainer can train on (embeddings included)."""
    harness = harness_factory(shards_bucket=private_bucket)
    env = _project_env(harness)
    settings = stack.settings
    url = f"http://{settings.host}:{settings.gateway_port}/v1"
    start_us = time.time_ns() // 1000 - 1_000_000
    prompts = ("What is 12 plus 30?", "Name a prime above 50.", "Reverse the word 'stream'.")
    with httpx.Client(timeout=60) as http:
        sent = [
            chat(http, url, f"{prompts[i % 3]} (prepare #{i})", user=f"p-{i % 3}", stream=i == 3)
            for i in range(8)
        ]
        graded = {s["decision_id"]: float(i % 2) for i, s in enumerate(sent[:4])}
        for decision_id, score in graded.items():
            body = {"decision_id": decision_id, "score": score, "source": "user"}
            assert http.post(f"{url}/feedback", json=body).status_code == 202
    ids = [s["decision_id"] for s in sent]
    spans = wait_traced(settings.jaeger_url, ids, start_us)
    end = datetime.fromtimestamp(time.time() + 1, tz=UTC)
    hours = (end.timestamp() * 1e6 - start_us) / 3.6e9
    params = {"jaeger_url": settings.jaeger_url, "hours": f"{hours:.6f}", "end": end.isoformat()}
    experiment = f"routeiq/{harness.model_name}"
    done = _mlflow_run("prepare_data", {**params, "window_s": "60"}, env, experiment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    prepared = _json_out(done)
    # Other traffic on the stack in the same range is prepared too; ours is all there.
    assert prepared["decisions"] >= len(ids)
    assert prepared["with_feedback"] >= len(graded)
    assert all(k.startswith("shards/router_decision.v1/jaeger/") for k in prepared["manifests"])

    store = ArtifactStore(minio_client)
    table, _ = read_tables(store, private_bucket, prepared["manifests"])
    rows = {r["decision_id"]: r for r in table.to_pylist()}
    assert table.num_rows == prepared["rows"]
    assert set(ids) <= set(rows)
    for s in sent:
        row, traced = rows[s["decision_id"]], spans[s["decision_id"]]["record"]
        assert (row["selected_model"], row["strategy"]) == (s["model"], s["strategy"])
        if s["decision_id"] in graded:
            assert row["quality_source"] == "feedback"
            assert row["quality"] == graded[s["decision_id"]]
            assert row["feedback_count"] == 1
        else:  # no grade: the outcome labels it, as the labeler would
            assert (row["quality_source"], row["quality"]) == ("outcome", 1.0)
        assert row["reward"] == pytest.approx(row["quality"] - 10.0 * (row["cost_usd"] or 0.0))
        # The vector the gateway computed, carried by the span event.
        assert row["embedding_model"] == traced["embedding_model"]
        np.testing.assert_allclose(row["embedding"], traced["query_embedding"], rtol=1e-6)
    ours = table.filter(np.isin(table.column("decision_id").to_numpy(), ids))
    data = training_data(ours, propensity_correction="none")
    assert data.embeddings.shape == (len(ids), len(spans[ids[0]]["record"]["query_embedding"]))

    client = MlflowClient(tracking_uri=harness.settings.mlflow_tracking_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        filter_string="tags.`mlflow.project.entryPoint` = 'prepare_data'",
    )
    assert run.data.metrics["decisions"] == prepared["decisions"]
    # Preparing the same range again rewrites the same objects.
    again = _json_out(_mlflow_run("prepare_data", {**params, "window_s": "60"}, env, experiment))
    assert again["manifests"] == prepared["manifests"]
    assert len(list_manifests(store, private_bucket)) == len(prepared["manifests"])
