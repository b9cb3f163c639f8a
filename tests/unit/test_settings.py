"""Settings: typed, prefixed, strict — misconfiguration fails at start with the reason."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from routeiq.errors import ConfigError
from routeiq.settings import KafkaSettings, S3Settings, ServiceSettings
from routeiq_cli.stack.settings import StackSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_DEMO_")

    port: int = 8000
    kafka: KafkaSettings = KafkaSettings()
    api_key: SecretStr = SecretStr("dev")


def test_values_and_nested_groups_come_from_the_prefixed_environment() -> None:
    s = DemoSettings.load(
        {
            "ROUTEIQ_DEMO_PORT": "9000",
            "ROUTEIQ_DEMO_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "ROUTEIQ_DEMO_KAFKA__EXTRA": '{"linger.ms": "20"}',
            "UNRELATED": "x",
        }
    )
    assert s.port == 9000
    assert s.kafka.client_config()["bootstrap.servers"] == "k1:9092,k2:9092"
    assert s.kafka.client_config()["linger.ms"] == "20"


def test_a_typo_is_refused_and_named() -> None:
    with pytest.raises(ConfigError, match="ROUTEIQ_DEMO_POTR"):
        DemoSettings.load({"ROUTEIQ_DEMO_POTR": "1"})


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"ROUTEIQ_DEMO_PORT": "eighty"}, "port"),
        ({"ROUTEIQ_DEMO_KAFKA__BOOTSTRAP_SERVERS": "no-port"}, "host:port"),
        ({"ROUTEIQ_DEMO_KAFKA__SESSION_TIMEOUT_MS": "5"}, "session_timeout_ms"),
        ({"ROUTEIQ_DEMO_KAFKA__NOPE": "1"}, "nope"),
    ],
)
def test_invalid_values_are_refused_with_the_field_and_reason(env, reason) -> None:
    with pytest.raises(ConfigError, match=reason):
        DemoSettings.load(env)


def test_secrets_never_show_in_repr() -> None:
    s = DemoSettings.load({"ROUTEIQ_DEMO_API_KEY": "hunter2"})
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())
    assert s.api_key.get_secret_value() == "hunter2"


def test_s3_endpoint_without_scheme() -> None:
    with pytest.raises(ValueError, match="without a scheme"):
        S3Settings(endpoint="http://localhost:9000")


def test_stack_ports_are_configurable_and_must_not_clash(tmp_path) -> None:
    s = StackSettings.load(
        {"ROUTEIQ_STACK_KAFKA_PORT": "19092", "ROUTEIQ_STACK_STATE_DIR": str(tmp_path)}
    )
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert s.state == tmp_path.resolve()
    with pytest.raises(ConfigError, match="both use port 6379"):
        StackSettings.load({"ROUTEIQ_STACK_MLFLOW_PORT": "6379"})
