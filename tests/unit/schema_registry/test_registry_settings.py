"""The registry's settings: defaults, environment, refusals, and exit code 2 at start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq.errors import ConfigError
from routeiq_schema_registry.config import RegistryServiceSettings


def test_defaults_match_confluent() -> None:
    s = RegistryServiceSettings.load({})
    assert (s.host, s.port, s.topic) == ("127.0.0.1", 8081, "_schemas")
    assert s.default_compatibility is CompatibilityLevel.BACKWARD
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_values_come_from_the_prefixed_environment() -> None:
    s = RegistryServiceSettings.load(
        {
            "ROUTEIQ_REGISTRY_PORT": "18081",
            "ROUTEIQ_REGISTRY_TOPIC": "_schemas_test",
            "ROUTEIQ_REGISTRY_DEFAULT_COMPATIBILITY": "full_transitive",
            "ROUTEIQ_REGISTRY_KAFKA__BOOTSTRAP_SERVERS": "k1:29092",
            "ROUTEIQ_REGISTRY_STARTUP_TIMEOUT_S": "5",
        }
    )
    assert s.port == 18081
    assert s.topic == "_schemas_test"
    assert s.default_compatibility is CompatibilityLevel.FULL_TRANSITIVE
    assert s.kafka.client_config()["bootstrap.servers"] == "k1:29092"
    assert s.startup_timeout_s == 5


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"ROUTEIQ_REGISTRY_PROT": "1"}, "ROUTEIQ_REGISTRY_PROT"),
        ({"ROUTEIQ_REGISTRY_PORT": "0"}, "port"),
        ({"ROUTEIQ_REGISTRY_TOPIC": "bad topic!"}, "topic"),
        ({"ROUTEIQ_REGISTRY_DEFAULT_COMPATIBILITY": "SIDEWAYS"}, "default_compatibility"),
        ({"ROUTEIQ_REGISTRY_KAFKA__BOOTSTRAP_SERVERS": "nohost"}, "host:port"),
        ({"ROUTEIQ_REGISTRY_STARTUP_TIMEOUT_S": "-1"}, "startup_timeout_s"),
    ],
)
def test_invalid_settings_are_refused_with_the_reason(env: dict[str, str], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        RegistryServiceSettings.load(env)


def _run_service(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_REGISTRY_")}
    env.update({f"ROUTEIQ_REGISTRY_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "routeiq_schema_registry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_service_exits_2_on_invalid_configuration() -> None:
    done = _run_service(default_compatibility="SIDEWAYS")
    assert done.returncode == 2
    assert "invalid configuration" in done.stderr
    assert "default_compatibility" in done.stderr
    done = _run_service(kafka__extra='{"no.such.property": "1"}')
    assert done.returncode == 2
    assert "no.such.property" in done.stderr


def test_the_service_exits_1_when_kafka_stays_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Port 1 on the loopback refuses connections: no broker, no network needed.
    done = _run_service(
        port=str(port), kafka__bootstrap_servers="127.0.0.1:1", startup_timeout_s="2"
    )
    assert done.returncode == 1
    assert "cannot replay _schemas from 127.0.0.1:1" in done.stderr
