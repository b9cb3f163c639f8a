"""The MLflow tracking server keeps runs in sqlite and artifacts in S3."""

from __future__ import annotations

import pytest
from routeiq.storage import ArtifactStore, make_minio

pytestmark = pytest.mark.integration


def test_a_run_logs_metrics_and_its_artifact_lands_in_s3(stack, unique, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    experiment_id = client.create_experiment(unique("test-experiment"))
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "apgr", 0.61)
    artifact = tmp_path / "curve.json"
    artifact.write_text('{"points": [[0, 0.6], [1, 0.86]]}')
    # The server proxies artifacts (--artifacts-destination): the client needs no S3 keys.
    client.log_artifact(run.info.run_id, str(artifact))
    client.set_terminated(run.info.run_id)

    assert client.get_run(run.info.run_id).data.metrics == {"apgr": 0.61}
    keys = ArtifactStore(make_minio(stack.s3)).list_keys(stack.settings.mlflow_bucket)
    assert any(k.endswith(f"{run.info.run_id}/artifacts/curve.json") for k in keys), keys
