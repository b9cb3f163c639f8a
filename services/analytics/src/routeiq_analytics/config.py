"""The analytics settings: ``ROUTEIQ_ANALYTICS_*`` environment variables, validated at start.

Durations are written as people write them (``10s``, ``5m``, ``1h``; a bare number is
seconds).

Prices, in USD per million tokens: ``ROUTEIQ_ANALYTICS_PRICES`` is the base table, the name of
a shipped one (``known``, the default: RouteLLM's GPT-4 / Mixtral and LLMRouter's models, the
latter read from the benchmark data folder when it is there; ``routellm``; ``llmrouter``) or a
JSON object (``{"my-model": {"input_per_m": 1.0, "output_per_m": 2.0}}``) that replaces it.
``ROUTEIQ_ANALYTICS_EXTRA_PRICES`` is a JSON object of the same shape laid over the base
table, so an operator adds or corrects models without restating the shipped ones.

Counterfactuals: every priced candidate model gets an "always this model" cost. The candidates
are ``CANDIDATES`` when set, else the models the decisions list as candidates (and served).
``STRONG_MODEL`` / ``WEAK_MODEL`` name the pair for the always-strong and random-mix
baselines; ``auto`` for both picks the most expensive and the cheapest candidate per window.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from routeiq.contracts.topics import FEEDBACK_EVENTS, ROUTER_DECISIONS
from routeiq.errors import ConfigError
from routeiq.routing.datasets import GPT4, MIXTRAL, ROUTELLM_PRICES, ModelPrice, llmrouter_prices
from routeiq.settings import (
    EachOnce,
    KafkaServiceSettings,
    Listed,
    LogLevel,
    Names,
    NotEmpty,
    TopicName,
    json_env_value,
)

from routeiq_analytics.core.durations import parse_duration

# More buckets than this per retention is a configuration mistake, not a use case.
MAX_BUCKETS = 100_000
# STRONG_MODEL / WEAK_MODEL value (or an empty one) that derives the pair from the candidates.
AUTO = "auto"
SHIPPED_TABLES = ("routellm", "llmrouter", "known")


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


def _known_prices() -> dict[str, ModelPrice]:
    """Every list price RouteIQ ships: RouteLLM's two models and LLMRouter's.

    Without the benchmark data folder (a slim deployment) only RouteLLM's are known; models
    missing from the table are reported as unpriced at run time, not refused at start.
    ``routeiq.routing.prepare.known_prices`` builds the same table, but importing it would pull
    the featurizer (scipy, embeddings) into this service.
    """
    prices = dict(ROUTELLM_PRICES)
    with contextlib.suppress(ConfigError, OSError):
        prices.update(llmrouter_prices())
    return prices


def _price_object(value: Any, *, named: tuple[str, ...] = ()) -> Any:
    """A price table's raw value: JSON decoded; any other text must be one of ``named``."""
    value = json_env_value(value)
    if isinstance(value, str) and value not in named:
        choices = f" or one of {', '.join(named)}" if named else ""
        raise ValueError(
            f"expected a JSON object {{model: {{input_per_m, output_per_m}}}}{choices}; "
            f"got {value!r}"
        )
    return value


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() else parse_duration(text)
    return value


def _price_table(value: Any) -> Any:
    """``prices``: a JSON table, or the name of a shipped one."""
    value = _price_object(value, named=SHIPPED_TABLES)
    if value == "known":
        return _table(_known_prices())
    if value == "routellm":
        return _table(dict(ROUTELLM_PRICES))
    if value == "llmrouter":
        try:
            return _table(llmrouter_prices())
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot read LLMRouter's price table: {exc}") from exc
    return value


def _auto_pair(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in {"", AUTO}:
        return None
    return value


# Durations as people write them (10s, 5m, 1h); a bare number is seconds.
Seconds = Annotated[int, BeforeValidator(_seconds)]
PriceTable = Annotated[dict[str, PriceSpec], NoDecode]
# A model of the strong/weak pair; None (``auto`` or empty): derived per window.
PairModel = Annotated[str | None, BeforeValidator(_auto_pair)]


class AnalyticsSettings(KafkaServiceSettings):
    """Where analytics listens, what it reads, how long it remembers and how it prices."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_ANALYTICS_")

    host: str = "127.0.0.1"
    port: int = Field(default=8095, ge=1, le=65535)
    decisions_topic: TopicName = ROUTER_DECISIONS.name
    feedback_topic: TopicName = FEEDBACK_EVENTS.name
    # Our own group: analytics reads at its own pace and never moves another consumer's offsets.
    group_id: str = "routeiq-analytics"
    client_id: str = "routeiq-analytics"
    # Windows shown by the dashboard and exported as metrics; the API takes any window up to
    # the retention.
    windows: Annotated[tuple[Seconds, ...], NoDecode, Listed, NotEmpty, EachOnce] = (300, 3600)
    bucket: Seconds = Field(default=10, ge=1, le=3600)
    # How long buckets are kept; defaults to the largest window.
    retention: Annotated[int | None, BeforeValidator(_seconds)] = None
    latency_sample_size: int = Field(default=512, ge=16, le=100_000)
    max_join_decisions: int = Field(default=200_000, ge=100)
    max_pending_feedback: int = Field(default=50_000, ge=10)
    feedback_wait: Seconds = 3600
    max_labels: int = Field(default=100, ge=2, le=10_000)
    prices: Annotated[PriceTable, BeforeValidator(_price_table)] = Field(
        default_factory=lambda: _table(_known_prices())
    )
    # Laid over ``prices``: add or correct models without restating the shipped table.
    extra_prices: Annotated[PriceTable, BeforeValidator(_price_object)] = Field(
        default_factory=dict
    )
    # The pair behind always-strong / always-weak / random-at-equal-quality; None (``auto``)
    # for both: per window, the most expensive and the cheapest priced candidate.
    strong_model: PairModel = GPT4
    weak_model: PairModel = MIXTRAL
    # The models "always X" baselines are computed for; empty: those the decisions list in
    # candidate_deployments, and those that served.
    candidates: Names = ()
    # A model is the best single model only on at least this many graded answers (served and
    # shadow feedback) in the window: a mean over a handful of grades is noise.
    best_model_min_graded: int = Field(default=20, ge=1, le=1_000_000)
    # On partition assignment, re-read the last `retention` of each topic so a restart
    # rebuilds the windows (offsets before the committed one are replayed, not dead-lettered).
    rebuild_on_start: bool = True
    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_timeout_s: float = Field(default=1.0, gt=0.0, le=60.0)
    # The dead-letter schema id must resolve within this (the registry may still be starting).
    startup_timeout_s: float = Field(default=60.0, gt=0.0)
    dashboard_refresh_s: int = Field(default=10, ge=0, le=3600)
    timeseries_points: int = Field(default=30, ge=2, le=1000)
    log_level: LogLevel = "info"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
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
        table = self.price_table()
        if (self.strong_model is None) != (self.weak_model is None):
            raise ValueError(
                "strong_model and weak_model: set both, or both to auto (the most expensive "
                "and the cheapest candidate)"
            )
        for role, name in (("strong_model", self.strong_model), ("weak_model", self.weak_model)):
            if name is not None and name not in table:
                raise ValueError(f"{role}: {name!r} has no price; priced models: {sorted(table)}")
        if self.strong_model is not None and self.strong_model == self.weak_model:
            raise ValueError("strong_model and weak_model must differ")
        unpriced = [name for name in self.candidates if name not in table]
        if unpriced:
            raise ValueError(
                f"candidates: no price for {unpriced} (add them to extra_prices); priced "
                f"models: {sorted(table)}"
            )
        return self

    @property
    def retention_s(self) -> int:
        """Seconds of buckets kept: ``retention`` or the largest window."""
        return self.retention if self.retention is not None else max(self.windows)

    @property
    def default_window(self) -> int:
        """The window the API and dashboard show when none is asked for: the largest."""
        return max(self.windows)

    @property
    def pair(self) -> tuple[str, str] | None:
        """The configured (strong, weak) pair; None: derived per window from the candidates."""
        if self.strong_model is None or self.weak_model is None:
            return None
        return self.strong_model, self.weak_model

    def price_table(self) -> dict[str, ModelPrice]:
        """``prices`` with ``extra_prices`` laid over it."""
        merged = {**self.prices, **self.extra_prices}
        return {name: spec.as_model_price() for name, spec in merged.items()}
