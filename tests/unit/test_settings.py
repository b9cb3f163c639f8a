"""Settings: typed, prefixed, strict — misconfiguration fails at start with the reason.

Every service's settings follow the same rules, so they are tested from two tables here: values
(nested groups too) come from the ``ROUTEIQ_<SERVICE>_`` environment, and an unknown variable or
an invalid value is refused at load, naming the variable or field and the reason. Only the cases
differ between services; each service's own file keeps its defaults and what is particular to it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq.contracts.topics import RETRAIN_REQUESTS, ROUTER_DECISIONS
from routeiq.errors import ConfigError
from routeiq.routing.datasets import GPT4
from routeiq.settings import KafkaSettings, S3Settings, ServiceSettings
from routeiq_analytics.config import AnalyticsSettings
from routeiq_cli.stack.settings import StackSettings
from routeiq_gateway.config import GatewaySettings
from routeiq_labeler.config import LabelerSettings
from routeiq_schema_registry.config import RegistryServiceSettings
from routeiq_trainer.config import TrainerSettings
from routeiq_upstream.config import UpstreamSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_DEMO_")

    port: int = 8000
    kafka: KafkaSettings = KafkaSettings()
    api_key: SecretStr = SecretStr("dev")


Reader = Callable[[Any], tuple[object, ...]]

# settings class, environment, what to read back from the loaded settings, what it must be
READ: list[tuple[type[ServiceSettings], dict[str, str], Reader, tuple[object, ...]]] = [
    (
        DemoSettings,
        {
            "ROUTEIQ_DEMO_PORT": "9000",
            "ROUTEIQ_DEMO_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "ROUTEIQ_DEMO_KAFKA__EXTRA": '{"linger.ms": "20"}',
            "UNRELATED": "x",
        },
        lambda s: (
            s.port,
            s.kafka.client_config()["bootstrap.servers"],
            s.kafka.client_config()["linger.ms"],
        ),
        (9000, "k1:9092,k2:9092", "20"),
    ),
    (
        RegistryServiceSettings,
        {
            "ROUTEIQ_REGISTRY_PORT": "18081",
            "ROUTEIQ_REGISTRY_TOPIC": "_schemas_test",
            "ROUTEIQ_REGISTRY_DEFAULT_COMPATIBILITY": "full_transitive",
            "ROUTEIQ_REGISTRY_KAFKA__BOOTSTRAP_SERVERS": "k1:29092",
            "ROUTEIQ_REGISTRY_STARTUP_TIMEOUT_S": "5",
        },
        lambda s: (
            s.port,
            s.topic,
            s.default_compatibility is CompatibilityLevel.FULL_TRANSITIVE,
            s.kafka.client_config()["bootstrap.servers"],
            s.startup_timeout_s,
        ),
        (18081, "_schemas_test", True, "k1:29092", 5),
    ),
    (
        AnalyticsSettings,
        {
            "ROUTEIQ_ANALYTICS_WINDOWS": "1m, 15m,2h",
            "ROUTEIQ_ANALYTICS_BUCKET": "5s",
            "ROUTEIQ_ANALYTICS_RETENTION": "3h",
            "ROUTEIQ_ANALYTICS_FEEDBACK_WAIT": "900",
            "ROUTEIQ_ANALYTICS_PRICES": '{"a": {"input_per_m": 1, "output_per_m": 2}, '
            '"b": {"input_per_m": 0.1, "output_per_m": 0.2}}',
            "ROUTEIQ_ANALYTICS_STRONG_MODEL": "a",
            "ROUTEIQ_ANALYTICS_WEAK_MODEL": "b",
            "ROUTEIQ_ANALYTICS_KAFKA__BOOTSTRAP_SERVERS": "broker:9093",
        },
        lambda s: (
            s.windows,
            (s.bucket, s.retention_s, s.feedback_wait),
            s.price_table()["b"].cost(1_000_000, 0),
            s.kafka.bootstrap_servers,
        ),
        ((60, 900, 7200), (5, 10800, 900), 0.1, "broker:9093"),
    ),
]


@pytest.mark.parametrize(
    ("settings", "env", "read", "expected"),
    [pytest.param(*case, id=case[0].__name__) for case in READ],
)
def test_values_and_nested_groups_come_from_the_prefixed_environment(
    settings: type[ServiceSettings],
    env: dict[str, str],
    read: Reader,
    expected: tuple[object, ...],
) -> None:
    assert read(settings.load(env)) == expected


# The gateway needs its keys before anything else can be judged.
GATEWAY_ENV = {
    "ROUTEIQ_GATEWAY_CONFIG_PATH": "/nonexistent/m.yaml",
    "ROUTEIQ_GATEWAY_ADMIN_KEY": "short",
    "ROUTEIQ_GATEWAY_DECISION_KEY": "d" * 20,
    "ROUTEIQ_GATEWAY_USER_SALT": "s",
}

# settings class -> [(environment, a regular expression the ConfigError's text must contain)]
REFUSED: dict[type[ServiceSettings], list[tuple[dict[str, str], str]]] = {
    DemoSettings: [
        ({"ROUTEIQ_DEMO_POTR": "1"}, "ROUTEIQ_DEMO_POTR"),
        ({"ROUTEIQ_DEMO_PORT": "eighty"}, "port"),
        ({"ROUTEIQ_DEMO_KAFKA__BOOTSTRAP_SERVERS": "no-port"}, "host:port"),
        ({"ROUTEIQ_DEMO_KAFKA__SESSION_TIMEOUT_MS": "5"}, "session_timeout_ms"),
        ({"ROUTEIQ_DEMO_KAFKA__NOPE": "1"}, "nope"),
    ],
    RegistryServiceSettings: [
        ({"ROUTEIQ_REGISTRY_PROT": "1"}, "ROUTEIQ_REGISTRY_PROT"),
        ({"ROUTEIQ_REGISTRY_PORT": "0"}, "port"),
        ({"ROUTEIQ_REGISTRY_TOPIC": "bad topic!"}, "topic"),
        ({"ROUTEIQ_REGISTRY_DEFAULT_COMPATIBILITY": "SIDEWAYS"}, "default_compatibility"),
        ({"ROUTEIQ_REGISTRY_KAFKA__BOOTSTRAP_SERVERS": "nohost"}, "host:port"),
        ({"ROUTEIQ_REGISTRY_STARTUP_TIMEOUT_S": "-1"}, "startup_timeout_s"),
    ],
    AnalyticsSettings: [
        (env, re.escape(reason))
        for env, reason in [
            ({"ROUTEIQ_ANALYTICS_WINDOWS": "5m,1x"}, "not a duration: '1x'"),
            ({"ROUTEIQ_ANALYTICS_RETENTION": "10m"}, "shorter than the largest window"),
            ({"ROUTEIQ_ANALYTICS_WINDOWS": "5s"}, "shorter than one bucket"),
            ({"ROUTEIQ_ANALYTICS_STRONG_MODEL": "nobody"}, "strong_model: 'nobody' has no price"),
            ({"ROUTEIQ_ANALYTICS_WEAK_MODEL": GPT4}, "must differ"),
            ({"ROUTEIQ_ANALYTICS_PRICES": "cheap"}, "one of routellm, llmrouter"),
            ({"ROUTEIQ_ANALYTICS_FEEDBACK_TOPIC": "bad topic"}, "not a legal Kafka topic"),
            (
                {"ROUTEIQ_ANALYTICS_FEEDBACK_TOPIC": ROUTER_DECISIONS.name},
                f"decisions_topic and feedback_topic are both '{ROUTER_DECISIONS.name}'",
            ),
            ({"ROUTEIQ_ANALYTICS_BUCKET": "1s", "ROUTEIQ_ANALYTICS_RETENTION": "7d"}, "buckets"),
            ({"ROUTEIQ_ANALYTICS_WINDOW": "5m"}, "unknown setting(s) ROUTEIQ_ANALYTICS_WINDOW"),
            ({"ROUTEIQ_ANALYTICS_STRONG_MODEL": "auto"}, "set both, or both to auto"),
            (
                {"ROUTEIQ_ANALYTICS_CANDIDATES": "gpt-4-1106-preview,nobody"},
                "no price for ['nobody']",
            ),
            ({"ROUTEIQ_ANALYTICS_CANDIDATES": f"{GPT4},{GPT4}"}, f"listed twice: {GPT4}"),
            ({"ROUTEIQ_ANALYTICS_WINDOWS": "5m,300"}, "windows: Value error, listed twice: 300"),
            ({"ROUTEIQ_ANALYTICS_WINDOWS": ","}, "windows: Value error, list at least one"),
            ({"ROUTEIQ_ANALYTICS_EXTRA_PRICES": "cheap"}, "expected a JSON object"),
            (
                {"ROUTEIQ_ANALYTICS_EXTRA_PRICES": '{"m": {"input_per_m": -1, "output_per_m": 1}}'},
                "greater than or equal to 0",
            ),
            ({"ROUTEIQ_ANALYTICS_PRICES": '{"m": 1'}, "not valid JSON"),
            ({"ROUTEIQ_ANALYTICS_BEST_MODEL_MIN_GRADED": "0"}, "best_model_min_graded"),
        ]
    ],
    LabelerSettings: [
        ({"ROUTEIQ_LABELER_WINDOW_SIZ_S": "1"}, "unknown setting"),
        ({"ROUTEIQ_LABELER_FEEDBACK_TOPIC": ROUTER_DECISIONS.name}, "are both"),
        ({"ROUTEIQ_LABELER_DEADLETTER_TOPIC": RETRAIN_REQUESTS.name}, "are both"),
        (
            {"ROUTEIQ_LABELER_QUALITY_SOURCE": "feedback", "ROUTEIQ_LABELER_FEEDBACK_TTL_S": "0"},
            "would label nothing",
        ),
        ({"ROUTEIQ_LABELER_QUALITY_SOURCE": "vibes"}, "quality_source"),
        ({"ROUTEIQ_LABELER_WINDOW_SIZE_S": "0"}, "window_size_s"),
        ({"ROUTEIQ_LABELER_WINDOW_SIZE_S": "0.0005"}, "whole number of milliseconds"),
        ({"ROUTEIQ_LABELER_ALLOWED_LATENESS_S": "-1"}, "allowed_lateness_s"),
        ({"ROUTEIQ_LABELER_COST_WEIGHT": "-0.1"}, "cost_weight"),
        ({"ROUTEIQ_LABELER_RETRAIN_ROUTER_TYPES": '["knn", "xgboost"]'}, "xgboost"),
        ({"ROUTEIQ_LABELER_RETRAIN_MODEL_NAME": " "}, "must not be empty"),
        ({"ROUTEIQ_LABELER_APP_ID": "bad id"}, "app_id"),
        ({"ROUTEIQ_LABELER_DECISIONS_TOPIC": "no spaces allowed"}, "topic name"),
        ({"ROUTEIQ_LABELER_KAFKA__EXTRA": '{"linger.ms": "5"}'}, "librdkafka"),
        ({"ROUTEIQ_LABELER_KAFKA__SECURITY_PROTOCOL": "SSL"}, "security_protocol"),
        ({"ROUTEIQ_LABELER_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "needs sasl"),
        ({"ROUTEIQ_LABELER_WEB_PORT": "70000"}, "web_port"),
    ],
    TrainerSettings: [
        ({"ROUTEIQ_TRAINER_ROUTER_TYPES": "knn,bert"}, "bert cannot be a default router type"),
        ({"ROUTEIQ_TRAINER_ROUTER_TYPES": "knn,forest"}, "unknown router type"),
        ({"ROUTEIQ_TRAINER_ROUTER_TYPES": "knn,knn"}, "router_types: .*listed twice: knn"),
        ({"ROUTEIQ_TRAINER_ROUTER_TYPES": ""}, "router_types: .*list at least one"),
        ({"ROUTEIQ_TRAINER_STRONG_MODEL": "gpt-4"}, "set both strong_model and weak_model"),
        (
            {"ROUTEIQ_TRAINER_STRONG_MODEL": "a", "ROUTEIQ_TRAINER_WEAK_MODEL": "a"},
            "are both 'a'",
        ),
        ({"ROUTEIQ_TRAINER_SIGNING_KEY": "not base64!"}, "not valid base64"),
        ({"ROUTEIQ_TRAINER_SIGNING_KEY": base64.b64encode(b"short").decode()}, "32 bytes"),
        (
            {"ROUTEIQ_TRAINER_ANNOUNCEMENTS_TOPIC": RETRAIN_REQUESTS.name},
            "requests_topic and announcements_topic are both .*must differ",
        ),
        ({"ROUTEIQ_TRAINER_GATE_METRIC": "accuracy"}, "gate_metric"),
        ({"ROUTEIQ_TRAINER_GATE_MARGIN": "-0.1"}, "gate_margin"),
        ({"ROUTEIQ_TRAINER_VALIDATION_FRACTION": "1.0"}, "validation_fraction"),
        ({"ROUTEIQ_TRAINER_DEVICE": "tpu"}, "device"),
        ({"ROUTEIQ_TRAINER_REQUESTS_TOPIC": "bad topic"}, "not a legal Kafka topic name"),
        ({"ROUTEIQ_TRAINER_MLFLOW_TRACKING_URI": "file:///tmp/mlruns"}, "mlflow tracking uri"),
        ({"ROUTEIQ_TRAINER_GATEMETRIC": "apgr"}, "unknown setting"),
    ],
    UpstreamSettings: [
        ({"ROUTEIQ_UPSTREAM_PROT": "1"}, "ROUTEIQ_UPSTREAM_PROT"),
        ({"ROUTEIQ_UPSTREAM_PORT": "70000"}, "port"),
        ({"ROUTEIQ_UPSTREAM_DATASETS": "gsm8k,squad"}, "unknown dataset 'squad'"),
        ({"ROUTEIQ_UPSTREAM_DATASETS": ""}, "datasets: .*list at least one"),
        ({"ROUTEIQ_UPSTREAM_DATASETS": "gsm8k,gsm8k"}, "datasets: .*listed twice: gsm8k"),
        ({"ROUTEIQ_UPSTREAM_DATA_DIR": "/no/such/dir"}, "not a directory"),
        ({"ROUTEIQ_UPSTREAM_LATENCY_MS": "-5"}, "latency_ms"),
        ({"ROUTEIQ_UPSTREAM_ERROR_RATE": '{"gpt-4": 1.5}'}, "within 0..1"),
        ({"ROUTEIQ_UPSTREAM_ERROR_RATE": "{bad json"}, "not valid JSON"),
        ({"ROUTEIQ_UPSTREAM_ERROR_RATE": "gpt-4=0.5"}, "JSON object"),
        ({"ROUTEIQ_UPSTREAM_ERROR_STATUS": "500"}, "error_status"),
        ({"ROUTEIQ_UPSTREAM_MODEL_LATENCY_MS": '{"gpt-4": -1}'}, "0..600000"),
        ({"ROUTEIQ_UPSTREAM_MODEL_ALIASES": '{"a": "a"}'}, "points at itself"),
        ({"ROUTEIQ_UPSTREAM_API_KEY": " "}, "api_key is empty"),
        ({"ROUTEIQ_UPSTREAM_TOKENIZER": "gpt2"}, "tokenizer"),
        ({"ROUTEIQ_UPSTREAM_STREAM_CHUNK_WORDS": "0"}, "stream_chunk_words"),
        ({"ROUTEIQ_UPSTREAM_MAX_BODY_BYTES": "10"}, "max_body_bytes"),
        (
            {"ROUTEIQ_UPSTREAM_TOKENIZER": "approx", "ROUTEIQ_UPSTREAM_TIKTOKEN_CACHE_DIR": "/"},
            "never reads it",
        ),
    ],
    GatewaySettings: [
        (GATEWAY_ENV, r"admin_key: .*16 characters"),
        ({**GATEWAY_ENV, "ROUTEIQ_GATEWAY_ADMIN_KYE": "x"}, "ROUTEIQ_GATEWAY_ADMIN_KYE"),
        (
            {
                **GATEWAY_ENV,
                "ROUTEIQ_GATEWAY_ADMIN_KEY": "a" * 16,
                "ROUTEIQ_GATEWAY_TELEMETRY__EXPORT_BATCH_SIZE": "0",
            },
            r"telemetry.export_batch_size: Input should be greater than or equal to 1",
        ),
        (
            {
                **GATEWAY_ENV,
                "ROUTEIQ_GATEWAY_ADMIN_KEY": "a" * 16,
                "ROUTEIQ_GATEWAY_CONTROL_AUDIT_TOPIC": ROUTER_DECISIONS.name,
            },
            f"decisions_topic and control_audit_topic are both '{ROUTER_DECISIONS.name}'",
        ),
    ],
}


@pytest.mark.parametrize(
    ("settings", "env", "reason"),
    [
        pytest.param(settings, env, reason, id=f"{settings.__name__}-{n}")
        for settings, cases in REFUSED.items()
        for n, (env, reason) in enumerate(cases)
    ],
)
def test_every_service_refuses_typos_and_invalid_values_naming_the_field(
    settings: type[ServiceSettings], env: dict[str, str], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        settings.load(env)


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [
        (AnalyticsSettings, "ROUTEIQ_ANALYTICS_"),
        (LabelerSettings, "ROUTEIQ_LABELER_"),
        (TrainerSettings, "ROUTEIQ_TRAINER_"),
        (UpstreamSettings, "ROUTEIQ_UPSTREAM_"),
        (RegistryServiceSettings, "ROUTEIQ_REGISTRY_"),
    ],
)
def test_every_service_takes_its_log_level_in_any_case_and_refuses_others(
    settings: type[ServiceSettings], prefix: str
) -> None:
    loaded: Any = settings.load({f"{prefix}LOG_LEVEL": "DEBUG"})
    assert loaded.log_level == "debug"
    with pytest.raises(ConfigError, match="log_level"):
        settings.load({f"{prefix}LOG_LEVEL": "verbose"})


def test_labeler_quality_source_in_any_case() -> None:
    loaded = LabelerSettings.load({"ROUTEIQ_LABELER_QUALITY_SOURCE": "Feedback"})
    assert loaded.quality_source == "feedback"


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
