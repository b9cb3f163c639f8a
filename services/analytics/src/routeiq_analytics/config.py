"""The analytics settings: ``ROUTEIQ_ANALYTICS_*`` environment variables, validated at start.

Durations are written as people write them (``10s``, ``5m``, ``1h``; a bare number is
seconds). ``ROUTEIQ_ANALYTICS_PRICES`` is a JSON object of USD per million tokens per model
(``{"my-model": {"input_per_m": 1.0, "output_per_m": 2.0}}``) or the name of a shipped table:
``routellm`` (GPT-4 / Mixtral, the local stack's two models, the default) or ``llmrouter``
(LLMRouter's nine models, read from the benchmark data folder).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from routeiq.contracts.topics import DEAD_LETTERS, FEEDBACK_EVENTS, ROUTER_DECISIONS
from routeiq.routing.datasets import GPT4, MIXTRAL, ROUTELLM_PRICES, ModelPrice, llmrouter_prices
from routeiq.settings import KafkaSettings, RegistrySettings, ServiceSettings

from routeiq_analytics.core.durations import parse_duration

# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
# More buckets than this per retention is a configuration mistake, not a use case.
MAX_BUCKETS = 100_000


class PriceSpec(BaseModel):
    """USD per million input and output tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_m: float = Field(ge=0.0)
    output_per_m: float = Field(ge=0.0)

    def as_model_price(self) -> ModelPrice:
        return ModelPrice(self.input_per_m, self.output_per_m)


def _table(prices: dict[str, ModelPrice]) -> dict[str, PriceSpec]:
    return {
        name: PriceSpec(input_per_m=p.input_per_m, output_per_m=p.output_per_m)
        for name, p in prices.items()
    }


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() else parse_duration(text)
    return value


class AnalyticsSettings(ServiceSettings):
    """Where analytics listens, what it reads, how long it remembers and how it prices."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_ANALYTICS_")

    host: str = "127.0.0.1"
    port: int = Field(default=8095, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    decisions_topic: str = ROUTER_DECISIONS.name
    feedback_topic: str = FEEDBACK_EVENTS.name
    deadletter_topic: str = DEAD_LETTERS.name
    # Our own group: analytics reads at its own pace and never moves another consumer's offsets.
    group_id: str = "routeiq-analytics"
    client_id: str = "routeiq-analytics"
    # Windows shown by the dashboard and exported as metrics; the API takes any window up to
    # the retention.
    windows: tuple[int, ...] = (300, 3600)
    bucket: int = Field(default=10, ge=1, le=3600)
    # How long buckets are kept; defaults to the largest window.
    retention: int | None = None
    latency_sample_size: int = Field(default=512, ge=16, le=100_000)
    max_join_decisions: int = Field(default=200_000, ge=100)
    max_pending_feedback: int = Field(default=50_000, ge=10)
    feedback_wait: int = 3600
    max_labels: int = Field(default=100, ge=2, le=10_000)
    prices: dict[str, PriceSpec] = Field(default_factory=lambda: _table(dict(ROUTELLM_PRICES)))
    strong_model: str = GPT4
    weak_model: str = MIXTRAL
    # On partition assignment, re-read the last `retention` of each topic so a restart
    # rebuilds the windows (offsets before the committed one are replayed, not dead-lettered).
    rebuild_on_start: bool = True
    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_timeout_s: float = Field(default=1.0, gt=0.0, le=60.0)
    # The dead-letter schema id must resolve within this (the registry may still be starting).
    startup_timeout_s: float = Field(default=60.0, gt=0.0)
    dashboard_refresh_s: int = Field(default=10, ge=0, le=3600)
    timeseries_points: int = Field(default=30, ge=2, le=1000)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("decisions_topic", "feedback_topic", "deadletter_topic")
    @classmethod
    def _legal_topic(cls, value: str) -> str:
        if not _TOPIC_NAME.fullmatch(value) or value in {".", ".."}:
            raise ValueError(
                f"not a legal Kafka topic name: {value!r} (1-249 of a-z A-Z 0-9 . _ -)"
            )
        return value

    @field_validator("windows", mode="before")
    @classmethod
    def _parse_windows(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return tuple(_seconds(v) for v in value)
        return value

    @field_validator("bucket", "retention", "feedback_wait", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("prices", mode="before")
    @classmethod
    def _price_table(cls, value: Any) -> Any:
        if value == "routellm":
            return _table(dict(ROUTELLM_PRICES))
        if value == "llmrouter":
            try:
                return _table(llmrouter_prices())
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"cannot read LLMRouter's price table: {exc}") from exc
        if isinstance(value, str):
            raise ValueError(
                "expected a JSON object {model: {input_per_m, output_per_m}} or one of "
                f"routellm, llmrouter; got {value!r}"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.windows:
            raise ValueError("windows: give at least one window (e.g. 5m,1h)")
        if len(set(self.windows)) != len(self.windows):
            raise ValueError(f"windows: duplicates in {list(self.windows)}")
        if min(self.windows) < self.bucket:
            raise ValueError(
                f"windows: {min(self.windows)}s is shorter than one bucket ({self.bucket}s)"
            )
        if self.retention is not None and self.retention < max(self.windows):
            raise ValueError(
                f"retention: {self.retention}s is shorter than the largest window "
                f"({max(self.windows)}s)"
            )
        if self.retention_s // self.bucket > MAX_BUCKETS:
            raise ValueError(
                f"retention / bucket = {self.retention_s // self.bucket} buckets; at most "
                f"{MAX_BUCKETS} (use longer buckets)"
            )
        if self.feedback_wait < 1:
            raise ValueError("feedback_wait: must be at least 1s")
        for role, name in (("strong_model", self.strong_model), ("weak_model", self.weak_model)):
            if name not in self.prices:
                raise ValueError(
                    f"{role}: {name!r} has no price; priced models: {sorted(self.prices)}"
                )
        if self.strong_model == self.weak_model:
            raise ValueError("strong_model and weak_model must differ")
        if len({self.decisions_topic, self.feedback_topic, self.deadletter_topic}) != 3:
            raise ValueError("decisions, feedback and dead-letter topics must be three topics")
        return self

    @property
    def retention_s(self) -> int:
        """Seconds of buckets kept: ``retention`` or the largest window."""
        return self.retention if self.retention is not None else max(self.windows)

    @property
    def default_window(self) -> int:
        """The window the API and dashboard show when none is asked for: the largest."""
        return max(self.windows)

    def price_table(self) -> dict[str, ModelPrice]:
        return {name: spec.as_model_price() for name, spec in self.prices.items()}
