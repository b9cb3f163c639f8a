"""The registry's settings: defaults and exit code 2 at start (reading the environment and the
refusals are in tests/unit/test_settings.py)."""

from __future__ import annotations

import subprocess

from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq_schema_registry.config import RegistryServiceSettings
from support.processes import free_port, run_module, service_env


def test_defaults_match_confluent() -> None:
    s = RegistryServiceSettings.load({})
    assert (s.host, s.port, s.topic) == ("127.0.0.1", 8081, "_schemas")
    assert s.default_compatibility is CompatibilityLevel.BACKWARD
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"


def _run_service(**settings: str) -> subprocess.CompletedProcess[str]:
    return run_module("routeiq_schema_registry", service_env("ROUTEIQ_REGISTRY_", **settings))


def test_the_service_exits_2_on_invalid_configuration() -> None:
    done = _run_service(default_compatibility="SIDEWAYS")
    assert done.returncode == 2
    assert "invalid configuration" in done.stderr
    assert "default_compatibility" in done.stderr
    done = _run_service(kafka__extra='{"no.such.property": "1"}')
    assert done.returncode == 2
    assert "no.such.property" in done.stderr


def test_the_service_exits_1_when_kafka_stays_unreachable() -> None:
    port = free_port()
    # Port 1 on the loopback refuses connections: no broker, no network needed.
    done = _run_service(
        port=str(port), kafka__bootstrap_servers="127.0.0.1:1", startup_timeout_s="2"
    )
    assert done.returncode == 1
    assert "cannot replay _schemas from 127.0.0.1:1" in done.stderr
    # Degrade quietly: the lost broker is one warning, not one line per retry.
    assert done.stderr.count("kafka unavailable:") == 1
