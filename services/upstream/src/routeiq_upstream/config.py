"""The upstream's settings: ``ROUTEIQ_UPSTREAM_*`` environment variables, validated at start.

Mappings (``MODEL_LATENCY_MS``, ``ERROR_RATE``, ``MODEL_ALIASES``) are JSON objects and
``DATASETS`` a JSON list or a comma-separated string. Unknown names under the prefix are refused
by ``ServiceSettings.load``; names of models in the mappings are checked against the served
catalogue once the data is loaded (``routeiq_upstream.core.catalog``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from routeiq.routing.datasets import GPT4, MIXTRAL
from routeiq.routing.oracle import GradeScale
from routeiq.settings import (
    AnyCase,
    LogLevel,
    Names,
    NotEmpty,
    ServiceSettings,
    json_env_value,
)

from routeiq_upstream.core.judging import DEFAULT_JUDGE_MODEL

BUILTIN_DATASETS = ("gsm8k", "mt_bench", "llmrouter-train", "llmrouter-test")
DEFAULT_ALIASES = {
    "gpt-4": GPT4,
    "mixtral-8x7b-instruct": MIXTRAL,
}
# What the values of each per-model mapping may be: (lowest, highest, the rule in words).
_PER_MODEL_RANGES = {
    "model_latency_ms": (0, 600_000, "latencies must be within 0..600000 ms"),
    "error_rate": (0, 1, "error rates must be within 0..1"),
}


class UpstreamSettings(ServiceSettings):
    """Where the offline upstream listens, what it serves and which faults it injects."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_UPSTREAM_")

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    # The benchmark data folder (``data/`` with routellm/ and llmrouter/); None: the loaders'.
    data_dir: Path | None = None
    datasets: Annotated[Names, NotEmpty] = BUILTIN_DATASETS
    # Added before the answer (before the first byte when streaming).
    latency_ms: float = Field(default=0.0, ge=0, le=600_000)
    # Uniform extra delay in [0, latency_jitter_ms] per request.
    latency_jitter_ms: float = Field(default=0.0, ge=0, le=600_000)
    # Per-model base latency replacing ``latency_ms`` for that model (jitter still applies).
    model_latency_ms: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    # Words per streamed chunk, and the pause between chunks.
    stream_chunk_words: int = Field(default=4, ge=1, le=100_000)
    stream_chunk_delay_ms: float = Field(default=0.0, ge=0, le=60_000)
    # Per-model share of prompts that fail; deterministic: a (model, prompt) pair always fails
    # or never does, so a fallback to another model is testable.
    error_rate: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    error_status: Literal[429, 503] = 503
    # When set, /v1/* requires ``Authorization: Bearer <key>``.
    api_key: SecretStr | None = None
    # None: the built-in aliases (DEFAULT_ALIASES) whose model a loaded dataset serves. Set
    # explicitly, every target must be served or the upstream refuses to start.
    model_aliases: Annotated[dict[str, str] | None, NoDecode] = None
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=1024**3)
    # auto: cl100k_base when its file is available offline, else the documented approximation.
    tokenizer: Annotated[Literal["auto", "cl100k_base", "approx"], AnyCase] = "auto"
    # Folder holding tiktoken's cached cl100k_base file; None: TIKTOKEN_CACHE_DIR, then the
    # copy litellm bundles.
    tiktoken_cache_dir: Path | None = None
    # The blind judge's model (routeiq.routing.judge): grades answers from the recorded scores.
    judge_model: str = Field(default=DEFAULT_JUDGE_MODEL, pattern=r"\S")  # not blank
    # Recorded score → grade, as the oracle's GradeScale: correct at or above, wrong at or below.
    judge_correct_at: float = Field(default=GradeScale.correct_at, ge=0, le=1)
    judge_wrong_at: float = Field(default=GradeScale.wrong_at, ge=0, le=1)
    log_level: LogLevel = "info"

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name in BUILTIN_DATASETS:
                continue
            if not (name.endswith(".csv") and Path(name).is_file()):
                raise ValueError(
                    f"unknown dataset {name!r}: use {', '.join(BUILTIN_DATASETS)} or the path "
                    "of an existing .csv file"
                )
        return value

    @field_validator("model_latency_ms", "error_rate", "model_aliases", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        value = json_env_value(value)
        if isinstance(value, str):
            raise ValueError('expected a JSON object such as {"model-name": value}')
        return value

    @field_validator("model_latency_ms", "error_rate")
    @classmethod
    def _per_model_values_in_range(
        cls, value: dict[str, float], info: ValidationInfo
    ) -> dict[str, float]:
        low, high, rule = _PER_MODEL_RANGES[str(info.field_name)]
        bad = {model: v for model, v in value.items() if not low <= v <= high}
        if bad:
            raise ValueError(f"{rule}, got {bad}")
        return value

    @field_validator("model_aliases")
    @classmethod
    def _aliases(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for alias, target in (value or {}).items():
            if not alias.strip() or not target.strip():
                raise ValueError(f"empty alias or target in {value}")
            if alias == target:
                raise ValueError(f"alias {alias!r} points at itself")
        return value

    @field_validator("data_dir", "tiktoken_cache_dir")
    @classmethod
    def _existing_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("api_key is empty; unset it to serve without authentication")
        return value

    @field_validator("error_status", mode="before")
    @classmethod
    def _status_number(cls, value: object) -> object:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _judge_scale(self) -> UpstreamSettings:
        if not self.judge_wrong_at < self.judge_correct_at:
            raise ValueError(
                f"judge_wrong_at ({self.judge_wrong_at}) must be below judge_correct_at "
                f"({self.judge_correct_at})"
            )
        return self

    @model_validator(mode="after")
    def _tokenizer_dir_needs_tiktoken(self) -> UpstreamSettings:
        if self.tiktoken_cache_dir is not None and self.tokenizer == "approx":
            raise ValueError("tiktoken_cache_dir is set but tokenizer=approx never reads it")
        return self
