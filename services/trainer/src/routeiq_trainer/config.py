"""The trainer's settings: ``ROUTEIQ_TRAINER_*`` environment variables, validated at start.

Nested groups use ``__`` (``ROUTEIQ_TRAINER_KAFKA__BOOTSTRAP_SERVERS``,
``ROUTEIQ_TRAINER_S3__ENDPOINT``); unknown names under the prefix are refused by
``ServiceSettings.load``, and contradictory values by the validators below, with the reason.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from routeiq.contracts.topics import (
    FEEDBACK_EVENTS,
    MODEL_ANNOUNCEMENTS,
    RETRAIN_REQUESTS,
)
from routeiq.errors import ConfigError, RouteIQError
from routeiq.routing.bundle import (
    Ed25519Signer,
    Ed25519Verifier,
    HmacKey,
    Signer,
    Verifier,
    signer_from,
)
from routeiq.routing.routers import ROUTER_TYPES
from routeiq.settings import (
    KafkaServiceSettings,
    LogLevel,
    Names,
    NotEmpty,
    S3Settings,
    SecretKey,
    TopicName,
)

# Gate metrics and whether a higher value is better.
GATE_METRICS: dict[str, bool] = {
    "apgr": True,
    # Over all N candidates, on validation rows where every candidate was graded.
    "aiq": True,
    "quality_at_50pct_cost": True,
    "auc": True,
    "best_model_accuracy": True,
    "policy_quality": True,
    "ope_snips": True,
    "ope_ips": True,
    "cpt50": False,
    "cpt80": False,
    "mean_cost_usd": False,
}

GateMetric = Literal[
    "apgr",
    "aiq",
    "quality_at_50pct_cost",
    "auc",
    "best_model_accuracy",
    "policy_quality",
    "ope_snips",
    "ope_ips",
    "cpt50",
    "cpt80",
    "mean_cost_usd",
]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "routeiq-trainer"


class TrainerSettings(KafkaServiceSettings):
    """Where the trainer reads requests and shards, tracks runs, stores bundles and announces."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_TRAINER_")

    s3: S3Settings = S3Settings()

    requests_topic: TopicName = RETRAIN_REQUESTS.name
    announcements_topic: TopicName = MODEL_ANNOUNCEMENTS.name
    consumer_group: str = "routeiq-trainer"
    # A request may train for many minutes; the worker polls again only after it (so the
    # partition is never handed to another worker mid-request). Must exceed the longest run.
    max_poll_interval_ms: int = Field(default=3_600_000, ge=60_000, le=86_400_000)
    poll_timeout_s: float = Field(default=1.0, gt=0, le=30)

    shards_bucket: str = "routeiq-shards"
    # prepare_data (past traffic from traces): Jaeger's query API, the gateway's service name
    # there, and the feedback topic its decisions are joined with.
    jaeger_url: str = ""
    jaeger_service: str = "routeiq-gateway"
    feedback_topic: TopicName = FEEDBACK_EVENTS.name
    models_bucket: str = "routeiq-models"

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    experiment_prefix: str = "routeiq/"

    signing_algorithm: Literal["hmac-sha256", "ed25519"] = "ed25519"
    # base64: the HMAC secret, or the 32-byte Ed25519 private key. Required to start.
    signing_key: SecretStr | None = None
    # The gateways' query key (routeiq.routing.querykey): with it, a request's ``texts``
    # (a dataset or file of the operator's prompts) is joined to shard rows by their key, so
    # routers that read text train on production labels. None: shards cannot be joined.
    query_key: SecretKey | None = None

    router_types: Annotated[Names, NotEmpty] = ("knn", "svm", "mlp", "mf")
    strong_model: str | None = None
    weak_model: str | None = None
    # Extra or overriding list prices, USD per million tokens: {"model": [input, output]}.
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)

    # AIQ judges the whole quality-cost curve: far steadier than APGR on small validation
    # sets (docs/trainer.md has the numbers).
    gate_metric: GateMetric = "aiq"
    gate_margin: float = Field(default=0.01, ge=0.0)
    # When the champion cannot be scored on the new validation rows (other candidates, or a
    # text-reading router against shards): hold the challenger for an operator, or promote it.
    gate_when_incomparable: Literal["hold", "promote"] = "hold"

    validation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    min_train_examples: int = Field(default=50, ge=2)
    min_validation_examples: int = Field(default=50, ge=2)
    propensity_correction: Literal["ipw", "dr", "none"] = "ipw"
    # Quality given up per unit of (cost / the most expensive candidate's mean cost) by the
    # greedy policy whose cost and off-policy value are reported.
    cost_weight: float = Field(default=0.0, ge=0.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0

    # The feature pipeline routers train on (and gateways serve them with): ``static`` (a
    # static encoder distilled from the packaged MiniLM, plus an n-gram sketch; built in
    # ``features_dir`` when that is empty), ``minilm`` or ``minilm+sketch``. A folder that
    # already holds a pipeline (``routeiq features build``) is used as it is: point gateways
    # and trainers at the same one so the features they log are the ones trained on.
    features: Literal["static", "minilm", "minilm+sketch"] = "static"
    features_dir: Path | None = None
    sketch_seed: int = Field(default=0, ge=0, lt=2**63)

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    host: str = "127.0.0.1"
    health_port: int = Field(default=8092, ge=1, le=65535)
    # Transient failures (S3, MLflow, Kafka) are retried this often before dead-lettering,
    # the wait doubling up to 30 s: about two minutes with the defaults, longer than a
    # dependency that answers a probe while it is still starting fails requests.
    retry_attempts: int = Field(default=8, ge=1, le=20)
    retry_backoff_s: float = Field(default=2.0, ge=0.0)
    git_commit: str | None = None
    instance_id: str = Field(default_factory=lambda: f"routeiq-trainer@{socket.gethostname()}")
    log_level: LogLevel = "info"

    @field_validator("router_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(ROUTER_TYPES))
        if unknown:
            raise ValueError(f"unknown router type(s) {unknown}; known: {sorted(ROUTER_TYPES)}")
        texts = sorted(t for t in value if ROUTER_TYPES.lookup(t).needs_text)
        if texts:
            raise ValueError(
                f"{', '.join(texts)} cannot be a default router type: it reads query text, which "
                "shards never carry; ask for it per request with a dataset file or texts"
            )
        return value

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _tracking_uri(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "databricks")):
            raise ValueError(f"mlflow tracking uri must be http(s)://..., got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> TrainerSettings:
        if (self.strong_model is None) != (self.weak_model is None):
            raise ValueError("set both strong_model and weak_model, or neither (then inferred)")
        if self.strong_model is not None and self.strong_model == self.weak_model:
            raise ValueError(f"strong_model and weak_model are both {self.strong_model!r}")
        if self.min_train_examples + self.min_validation_examples < 4:
            raise ValueError("too few minimum examples to train and validate")
        if self.signing_key is not None:
            try:
                signer_from(self.signing_algorithm, self.signing_key.get_secret_value())
            except RouteIQError as exc:
                raise ValueError(f"signing_key: {exc}") from exc
        return self

    def query_key_bytes(self) -> bytes | None:
        """The query key as the HMAC takes it; None when not set."""
        return self.query_key.get_secret_value().encode() if self.query_key else None

    def pipeline_dir(self) -> Path:
        """Where the trainer's feature pipeline lives (or is built)."""
        return self.features_dir or self.cache_dir / "features" / self.features

    def signer(self) -> Signer:
        """The bundle signer; ``ConfigError`` when no key is set (the worker refuses to start)."""
        if self.signing_key is None:
            raise ConfigError(
                "ROUTEIQ_TRAINER_SIGNING_KEY is not set: the trainer signs every bundle and "
                "refuses to start without a key (base64; for ed25519 a 32-byte private key, "
                "e.g. from routeiq.routing.bundle.generate_ed25519())"
            )
        return signer_from(self.signing_algorithm, self.signing_key.get_secret_value())

    def verifier(self) -> Verifier:
        """Verifies bundles this trainer (or one with the same key) signed."""
        signer = self.signer()
        if isinstance(signer, Ed25519Signer):
            return Ed25519Verifier(signer.public_key)
        if isinstance(signer, HmacKey):
            return signer
        raise ConfigError(f"no verifier for signing algorithm {self.signing_algorithm!r}")


def load_settings() -> TrainerSettings:
    """Settings for an MLflow project entry point: ``mlflow run``'s tracking URI unless the
    trainer's own is set, so the run and the registry are on the same server."""
    overrides: dict[str, Any] = {}
    if "ROUTEIQ_TRAINER_MLFLOW_TRACKING_URI" not in os.environ and os.environ.get(
        "MLFLOW_TRACKING_URI", ""
    ).startswith(("http://", "https://")):
        overrides["mlflow_tracking_uri"] = os.environ["MLFLOW_TRACKING_URI"]
    return TrainerSettings.load(**overrides)
