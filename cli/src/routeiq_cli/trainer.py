"""The trainer's public modules (``routeiq_trainer.config`` and ``.wiring``), wired to the
local stack: for `routeiq model ...`, `routeiq eval --model` and `routeiq demo`.

Settings are the trainer's (``ROUTEIQ_TRAINER_*``); where a connection setting is not in the
environment, the local stack's endpoints (``ROUTEIQ_STACK_*``) fill it in. The trainer is
imported inside the functions: `routeiq stack ...` should not pay for torch and MLflow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routeiq_trainer.config import TrainerSettings
    from routeiq_trainer.wiring import Services


def trainer_settings(environ: Mapping[str, str] | None = None) -> TrainerSettings:
    """``TrainerSettings`` from the environment, local-stack endpoints for what is unset."""
    from routeiq_trainer.config import TrainerSettings

    from routeiq_cli.stack.settings import StackSettings

    env = os.environ if environ is None else environ
    stack = StackSettings.load()
    defaults: dict[str, Any] = {
        "kafka": stack.kafka,
        "registry": stack.registry,
        "s3": stack.s3,
        "mlflow_tracking_uri": stack.mlflow_url,
        "models_bucket": stack.models_bucket,
        "shards_bucket": stack.shards_bucket,
    }
    if (stack.state / "secrets.json").is_file():
        # On the local stack, sign with the key `make up` generated for its trainer.
        from pydantic import SecretStr

        from routeiq_cli.stack.secrets import load_or_create

        defaults["signing_key"] = SecretStr(load_or_create(stack).signing_private)
    prefix = "ROUTEIQ_TRAINER_"
    set_names = {
        k.upper()[len(prefix) :].split("__", 1)[0] for k in env if k.upper().startswith(prefix)
    }
    overrides = {k: v for k, v in defaults.items() if k.upper() not in set_names}
    return TrainerSettings.load(**overrides)


@contextmanager
def trainer_services() -> Iterator[Services]:
    """The trainer's model operations (registry, bundles, announcer) without its training
    pipeline, flushed and closed on the way out."""
    from routeiq_trainer.wiring import build_services

    services = build_services(trainer_settings(), pipeline=False)
    try:
        yield services
    finally:
        services.close()
