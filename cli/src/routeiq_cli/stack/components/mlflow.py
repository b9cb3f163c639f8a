"""MLflow tracking: runs and the model registry in SQLite, artifacts in the stack's S3."""

from __future__ import annotations

from routeiq_cli.stack.components.base import Component, flags, http_health, prepare_dir, venv_bin
from routeiq_cli.stack.settings import StackSettings


def mlflow_component(settings: StackSettings) -> Component:
    options: dict[str, str | int | bool] = {
        "backend-store-uri": f"sqlite:///{settings.state / 'mlflow' / 'mlflow.db'}",
        "artifacts-destination": f"s3://{settings.mlflow_bucket}/",
        "host": settings.host,
        "port": settings.mlflow_port,
        "workers": 1,
    }
    return Component(
        name="mlflow",
        title="MLflow tracking",
        command=[venv_bin("mlflow"), "server", *flags(options, dash="--", joined=False)],
        environment={
            "MLFLOW_S3_ENDPOINT_URL": f"http://{settings.host}:{settings.s3_port}",
            "AWS_ACCESS_KEY_ID": settings.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": "us-east-1",
            # Job execution spawns a huey worker pool (3.8 GB → 0.8 GB without it).
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # litellm (imported by some MLflow paths) must not fetch its cost map.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        },
        ports=[settings.mlflow_port],
        health=http_health(f"http://{settings.host}:{settings.mlflow_port}/health"),
        endpoint=settings.mlflow_url,
        prepare=prepare_dir(settings.state / "mlflow"),
    )
