"""The labeler's settings: ``ROUTEIQ_LABELER_*`` environment variables, validated at start.

Nested groups use ``__`` (``ROUTEIQ_LABELER_KAFKA__BOOTSTRAP_SERVERS``,
``ROUTEIQ_LABELER_S3__ENDPOINT``); lists arrive as JSON
(``ROUTEIQ_LABELER_RETRAIN_ROUTER_TYPES='["knn","mlp"]'``). Unknown names under the prefix and
contradictory combinations are refused by ``LabelerSettings.load`` with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from routeiq.contracts.topics import (
    FEEDBACK_EVENTS,
    RETRAIN_REQUESTS,
    ROUTER_DECISIONS,
)
from routeiq.errors import ConfigError
from routeiq.labeling import QualitySource
from routeiq.routing.oracle import GradeScale, Oracle, OracleMatrix
from routeiq.routing.routers import ROUTER_TYPES
from routeiq.settings import (
    AnyCase,
    KafkaServiceSettings,
    LogLevel,
    S3Settings,
    TopicName,
    legal_topic_name,
)

# The app id prefixes changelog topic names (``<app_id>-<table>-changelog``): it must be a
# legal topic name with room left for the suffix.
MAX_APP_ID = 200


class LabelerSettings(KafkaServiceSettings):
    """Where the labeler reads and writes, how it windows and labels, when it asks to retrain."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_LABELER_")

    s3: S3Settings = S3Settings()
    shards_bucket: str = "routeiq-shards"

    decisions_topic: TopicName = ROUTER_DECISIONS.name
    feedback_topic: TopicName = FEEDBACK_EVENTS.name
    retrain_topic: TopicName = RETRAIN_REQUESTS.name
    # Faust app id: the consumer group and the prefix of the tables' changelog topics.
    app_id: str = "routeiq-labeler"
    # Replication of the changelog topics the worker creates (1 on the single-broker stack).
    changelog_replication_factor: int = Field(default=1, ge=1, le=32)

    # Event-time windows: a decision belongs to [start, start + size) by its own timestamp.
    window_size_s: float = Field(default=3600.0, gt=0)
    # A window closes once the partition's event time passed its end by this much; decisions
    # for a closed window are late and go to the window's late shard.
    allowed_lateness_s: float = Field(default=60.0, ge=0)
    # How long a decision waits for feedback on the served model before the outcome labels it
    # (processing time since it arrived); also how long feedback waits for its decision.
    feedback_ttl_s: float = Field(default=600.0, ge=0)
    # A caught-up partition without decisions for this long closes windows by the wall clock.
    idle_timeout_s: float = Field(default=30.0, gt=0)
    # How often windows are checked, shards written, feedback expired and lag measured.
    tick_interval_s: float = Field(default=5.0, gt=0)
    # How often the worker checks that Kafka answers (its state on /health/ready and in
    # routeiq_dependency_up; a loss and a recovery are logged once each).
    kafka_probe_interval_s: float = Field(default=10.0, gt=0)
    # Decisions stamped further than this in the future are invalid (they would close windows).
    max_future_skew_s: float = Field(default=300.0, ge=0)

    # reward = quality - cost_weight * cost_usd
    cost_weight: float = Field(default=10.0, ge=0)
    quality_source: Annotated[QualitySource, AnyCase] = "feedback_or_outcome"
    # Outcome-derived quality: 1.0 for a success within the SLO, this for a slower success,
    # 0.0 for errors, timeouts and cancellations.
    outcome_latency_slo_ms: float = Field(default=30_000.0, gt=0)
    slow_success_quality: float = Field(default=0.5, ge=0, le=1)

    # The oracle matrix (routeiq.routing.oracle): with both models named, a decision whose
    # cheap and strong answers were both graded gets their grades, the cell and the policy.
    oracle_cheap_model: str | None = None
    # The strong model of the oracle's pair (named together with the cheap one).
    oracle_strong_model: str | None = None
    # Quality at or above ``correct_at`` is correct, at or below ``wrong_at`` wrong.
    oracle_correct_at: float = Field(default=0.75, ge=0, le=1)
    # Quality at or below this is wrong; between the two, partial.
    oracle_wrong_at: float = Field(default=0.25, ge=0, le=1)
    # {cheap grade: {strong grade: policy}} as JSON; the default is DEFAULT_MATRIX.
    oracle_matrix: dict[str, dict[str, str]] | None = None

    # Publish a RetrainRequest after this many new labelled examples (0: never by count) ...
    retrain_threshold: int = Field(default=10_000, ge=0)
    # ... or this long after the last request when there are new examples (0: never by time).
    retrain_interval_s: float = Field(default=86_400.0, ge=0)
    retrain_model_name: str = "routeiq-router"
    retrain_router_types: list[str] = Field(default_factory=list)

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    data_dir: Path = Path(".routeiq/labeler")
    # Faust's offset commit interval (offsets commit only after the changelog is flushed).
    commit_interval_s: float = Field(default=2.0, gt=0)
    log_level: LogLevel = "info"

    @field_validator("app_id")
    @classmethod
    def _legal_app_id(cls, value: str) -> str:
        try:
            legal_topic_name(value)
        except ValueError:
            ok = False
        else:
            ok = len(value) <= MAX_APP_ID
        if not ok:
            raise ValueError(f"app_id must be 1-{MAX_APP_ID} of a-z A-Z 0-9 . _ -, got {value!r}")
        return value

    @field_validator("retrain_router_types")
    @classmethod
    def _known_router_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ROUTER_TYPES))  # built-ins and plugins
        if unknown:
            raise ValueError(
                f"unknown router type(s) {unknown}; known: {', '.join(sorted(ROUTER_TYPES))}"
            )
        return sorted(set(value))

    @field_validator("retrain_model_name", "shards_bucket")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LabelerSettings:
        if self.quality_source == "feedback" and self.feedback_ttl_s == 0:
            raise ValueError(
                "quality_source=feedback with feedback_ttl_s=0 would label nothing: a decision "
                "would never wait for its feedback"
            )
        if self.window_ms < 1 or abs(self.window_size_s * 1000 - self.window_ms) > 1e-6:
            raise ValueError(
                f"window_size_s={self.window_size_s} must be a whole number of milliseconds"
            )
        if (self.oracle_cheap_model is None) != (self.oracle_strong_model is None):
            raise ValueError("oracle_cheap_model and oracle_strong_model go together")
        try:
            self.oracle()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.kafka.extra:
            # The worker talks to Kafka through aiokafka, not librdkafka: passing librdkafka
            # properties through would silently do nothing.
            raise ValueError(
                "kafka.extra holds librdkafka properties, which the Faust worker (aiokafka) "
                f"cannot apply: {sorted(self.kafka.extra)}"
            )
        if self.kafka.security_protocol not in {"PLAINTEXT", "SASL_PLAINTEXT"}:
            raise ValueError(
                f"kafka.security_protocol={self.kafka.security_protocol!r}: the labeler supports "
                "PLAINTEXT and SASL_PLAINTEXT"
            )
        if self.kafka.security_protocol == "SASL_PLAINTEXT" and not (
            self.kafka.sasl_mechanism and self.kafka.sasl_username and self.kafka.sasl_password
        ):
            raise ValueError(
                "kafka.security_protocol=SASL_PLAINTEXT needs sasl_mechanism, sasl_username "
                "and sasl_password"
            )
        return self

    def oracle(self) -> Oracle | None:
        """The oracle these settings describe (None without its two models)."""
        if self.oracle_cheap_model is None or self.oracle_strong_model is None:
            return None
        return Oracle(
            cheap=self.oracle_cheap_model,
            strong=self.oracle_strong_model,
            scale=GradeScale(correct_at=self.oracle_correct_at, wrong_at=self.oracle_wrong_at),
            matrix=(
                OracleMatrix.from_mapping(self.oracle_matrix)
                if self.oracle_matrix is not None
                else OracleMatrix()
            ),
        )

    @property
    def window_ms(self) -> int:
        return round(self.window_size_s * 1000)

    @property
    def lateness_ms(self) -> int:
        return round(self.allowed_lateness_s * 1000)

    @property
    def ttl_ms(self) -> int:
        return round(self.feedback_ttl_s * 1000)

    @property
    def idle_ms(self) -> int:
        return round(self.idle_timeout_s * 1000)

    @property
    def retrain_enabled(self) -> bool:
        return self.retrain_threshold > 0 or self.retrain_interval_s > 0
