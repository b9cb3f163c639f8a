"""LabelerSettings: defaults and environment names (refusals: tests/unit/test_settings.py)."""

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


def test_retrain_can_be_left_to_operators() -> None:
    settings = LabelerSettings.load(
        environ={
            "ROUTEIQ_LABELER_RETRAIN_THRESHOLD": "0",
            "ROUTEIQ_LABELER_RETRAIN_INTERVAL_S": "0",
        }
    )
    assert not settings.retrain_enabled


def test_the_oracle_needs_both_models_and_a_whole_matrix() -> None:
    assert LabelerSettings.load(environ={}).oracle() is None
    settings = LabelerSettings.load(
        environ={
            "ROUTEIQ_LABELER_ORACLE_CHEAP_MODEL": "mixtral",
            "ROUTEIQ_LABELER_ORACLE_STRONG_MODEL": "gpt-4",
            "ROUTEIQ_LABELER_ORACLE_CORRECT_AT": "0.9",
        }
    )
    oracle = settings.oracle()
    assert oracle is not None
    assert (oracle.cheap, oracle.strong, oracle.scale.correct_at) == ("mixtral", "gpt-4", 0.9)
    refusals = {
        "ROUTEIQ_LABELER_ORACLE_CHEAP_MODEL": "oracle_strong_model go together",
        "ROUTEIQ_LABELER_ORACLE_MATRIX": "cell correct/partial: None is not one of",
        "ROUTEIQ_LABELER_ORACLE_WRONG_AT": "cut points",
    }
    both = {
        "ROUTEIQ_LABELER_ORACLE_CHEAP_MODEL": "mixtral",
        "ROUTEIQ_LABELER_ORACLE_STRONG_MODEL": "gpt-4",
    }
    values = {
        "ROUTEIQ_LABELER_ORACLE_CHEAP_MODEL": {"ROUTEIQ_LABELER_ORACLE_CHEAP_MODEL": "mixtral"},
        "ROUTEIQ_LABELER_ORACLE_MATRIX": {
            **both,
            "ROUTEIQ_LABELER_ORACLE_MATRIX": '{"correct": {"correct": "Standard_Query"}}',
        },
        "ROUTEIQ_LABELER_ORACLE_WRONG_AT": {**both, "ROUTEIQ_LABELER_ORACLE_WRONG_AT": "0.8"},
    }
    for name, reason in refusals.items():
        with pytest.raises(ConfigError, match=reason):
            LabelerSettings.load(environ=values[name])
