"""The local stack's components: how each is installed, configured, started and health-checked.

A component is data (command, environment, ports, log file) plus a health probe; the runner
starts them under supervisord in the order of ``components()`` and gates each on its probe.
One module per component family: ``kafka``, ``registry``, ``s3``, ``redis``, ``mlflow``,
``jaeger``, ``gateway`` and ``services`` (RouteIQ's own processes); ``base`` holds what they
share.
"""

from __future__ import annotations

from routeiq_cli.stack.components.base import Component, port_open
from routeiq_cli.stack.components.gateway import (
    MODEL_FILES,
    gateway_config_path,
    prepare_features,
    render_gateway_config,
)
from routeiq_cli.stack.components.jaeger import jaeger_component
from routeiq_cli.stack.components.kafka import (
    KAFKA_VERSION,
    _kafka_properties,
    install_kafka,
    kafka_component,
    kafka_libs,
)
from routeiq_cli.stack.components.mlflow import mlflow_component
from routeiq_cli.stack.components.redis import redis_component
from routeiq_cli.stack.components.registry import registry_component
from routeiq_cli.stack.components.s3 import s3_component
from routeiq_cli.stack.components.services import service_components
from routeiq_cli.stack.settings import StackSettings

__all__ = [
    "KAFKA_VERSION",
    "MODEL_FILES",
    "Component",
    "_kafka_properties",
    "components",
    "gateway_config_path",
    "install_kafka",
    "kafka_libs",
    "port_open",
    "prepare_features",
    "render_gateway_config",
    "service_components",
]


def components(settings: StackSettings) -> list[Component]:
    """Every component in start order (each one's dependencies come before it)."""
    return [
        kafka_component(settings),
        registry_component(settings),
        s3_component(settings),
        redis_component(settings),
        mlflow_component(settings),
        jaeger_component(settings),
        *service_components(settings),
    ]
