"""LabelerSettings: defaults, environment names, and refusal of contradictions."""

from __future__ import annotations

import pytest
from routeiq.contracts.topics import (
    DEAD_LETTERS,
    FEEDBACK_EVENTS,
    RETRAIN_REQUESTS,
    ROUTER_DECISIONS,
)
from routeiq.errors import ConfigError
from routeiq_labeler.config import LabelerSettings


def test_defaults_are_the_declared_topics_and_an_hour_window() -> None:
    settings = LabelerSettings.load(environ={})
    assert settings.decisions_topic == ROUTER_DECISIONS.name
    assert settings.feedback_topic == FEEDBACK_EVENTS.name
    assert settings.retrain_topic == RETRAIN_REQUESTS.name
    assert settings.deadletter_topic == DEAD_LETTERS.name
    assert settings.window_ms == 3_600_000
    assert settings.quality_source == "feedback_or_outcome"
    assert settings.retrain_enabled


def test_environment_names_and_nested_groups() -> None:
    settings = LabelerSettings.load(
        environ={
            "ROUTEIQ_LABELER_WINDOW_SIZE_S": "2.5",
            "ROUTEIQ_LABELER_ALLOWED_LATENESS_S": "0.5",
            "ROUTEIQ_LABELER_QUALITY_SOURCE": "OUTCOME",
            "ROUTEIQ_LABELER_RETRAIN_ROUTER_TYPES": '["mlp", "knn", "mlp"]',
            "ROUTEIQ_LABELER_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "ROUTEIQ_LABELER_S3__ENDPOINT": "minio:9000",
            "ROUTEIQ_LABELER_COST_WEIGHT": "0",
        }
    )
    assert settings.window_ms == 2500
    assert settings.lateness_ms == 500
    assert settings.quality_source == "outcome"
    assert settings.retrain_router_types == ["knn", "mlp"]
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.s3.endpoint == "minio:9000"
    assert settings.cost_weight == 0


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
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
)
def test_contradictions_and_typos_are_refused_with_the_reason(environ, reason) -> None:
    with pytest.raises(ConfigError, match=reason):
        LabelerSettings.load(environ=environ)


def test_retrain_can_be_left_to_operators() -> None:
    settings = LabelerSettings.load(
        environ={
            "ROUTEIQ_LABELER_RETRAIN_THRESHOLD": "0",
            "ROUTEIQ_LABELER_RETRAIN_INTERVAL_S": "0",
        }
    )
    assert not settings.retrain_enabled
