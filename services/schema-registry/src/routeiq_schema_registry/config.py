"""The registry's settings: ``ROUTEIQ_REGISTRY_*`` environment variables, validated at start.

``ROUTEIQ_REGISTRY_KAFKA__BOOTSTRAP_SERVERS`` (and the other ``KAFKA__*`` names) configure the
Kafka clients; unknown names under the prefix are refused by ``ServiceSettings.load``.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq.settings import KafkaSettings, LogLevel, ServiceSettings, TopicName


class RegistryServiceSettings(ServiceSettings):
    """Where the registry listens, which topic holds its state and how to reach Kafka."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_REGISTRY_")

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    topic: TopicName = "_schemas"
    # Replication factor used only when the registry creates the topic itself.
    topic_replication_factor: int = Field(default=1, ge=1, le=32)
    # Confluent's default; applies to subjects without a level of their own until PUT /config.
    default_compatibility: CompatibilityLevel = CompatibilityLevel.BACKWARD
    kafka: KafkaSettings = KafkaSettings()
    # Reaching Kafka, creating the topic and replaying it must finish within this, or exit 1.
    startup_timeout_s: float = Field(default=60.0, gt=0)
    # A write must be durable and read back by the registry within this (else 50002).
    write_timeout_s: float = Field(default=30.0, gt=0)
    log_level: LogLevel = "info"

    @field_validator("default_compatibility", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
