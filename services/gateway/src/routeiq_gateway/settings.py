"""The gateway replica's environment settings (``ROUTEIQ_GATEWAY_*``), validated at start: an
invalid value stops the gateway with the field that is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from routeiq.contracts.topics import (
    FEEDBACK_EVENTS,
    MODEL_ANNOUNCEMENTS,
    ROUTER_DECISIONS,
    ROUTING_CONFIG_AUDIT,
    ROUTING_CONFIGS,
)
from routeiq.settings import (
    KafkaServiceSettings,
    RedisSettings,
    S3Settings,
    SecretKey,
    TelemetrySettings,
    TopicName,
)


class GatewaySettings(KafkaServiceSettings):
    """Environment settings of one gateway replica."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_GATEWAY_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    config_path: Path
    # Secrets: the admin API key, the key that signs decision ids (shared by all replicas so
    # feedback is accepted by any of them) and the salt for hashing user ids into events.
    admin_key: SecretKey
    decision_key: SecretKey
    user_salt: SecretStr
    # The key of each decision's query_key (routeiq.routing.querykey: an HMAC of the routed
    # text, which joins decisions to the operator's prompt store so routers that read text can
    # train from production labels). Shared with the trainer; none: decisions carry no key.
    query_key: SecretKey | None = None
    replica_id: str = "gateway-1"
    telemetry: TelemetrySettings = TelemetrySettings()
    s3: S3Settings = S3Settings()
    redis: RedisSettings = RedisSettings()
    telemetry_enabled: bool = True
    include_embedding: bool = True
    decisions_topic: TopicName = ROUTER_DECISIONS.name
    feedback_topic: TopicName = FEEDBACK_EVENTS.name
    announcements_topic: TopicName = MODEL_ANNOUNCEMENTS.name
    spool_dir: Path = Path(".routeiq/gateway-spool")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    spool_fsync_ms: float = Field(default=50.0, ge=0.0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    embedding_cache_size: int = Field(default=50_000, ge=0)
    # The feature pipeline the gateway computes before any router bundle is active (a bundle
    # brings its own): a folder written by `routeiq features build`, shared with the trainer
    # so that the features logged now are the ones the first router trains on. Unset: the
    # packaged MiniLM alone (384-d, what gateways logged before pipelines).
    features_dir: Path | None = None
    # Feedback is accepted for decisions up to this old (the decision topic's retention).
    decision_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    # Model sync (announcement-driven hot-swap).
    sync_enabled: bool = True
    model_cache_dir: Path = Path(".routeiq/model-cache")
    cache_volume: str = "local"
    models_bucket: str = "routeiq-models"
    verify_algorithm: str = "ed25519"
    verify_key: SecretStr | None = None
    lock_ttl_s: float = Field(default=30.0, gt=1.0)
    lock_wait_s: float = Field(default=300.0, gt=0.0)
    redis_retries: int = Field(default=3, ge=0)
    keep_versions: int = Field(default=5, ge=1)
    audit_log: Path = Path(".routeiq/gateway-audit.jsonl")
    # Virtual keys (``POST /admin/keys``) live hashed in Redis. On: every chat and feedback
    # request needs a key (the model file's ``general_settings.master_key`` turns that on too).
    virtual_keys: bool = False
    # Prefix of the Redis keys that hold key records, spend and decision owners.
    keys_prefix: str = Field(default="routeiq", pattern=r"^[A-Za-z0-9:_.-]{1,64}$")
    # How long a verified key is trusted without asking Redis again (a revocation reaches the
    # other replicas within this).
    key_cache_s: float = Field(default=30.0, ge=0.0)
    # How long past that a known key still passes while Redis does not answer (a blip must
    # not refuse every client).
    key_stale_s: float = Field(default=600.0, ge=0.0)
    # How long the gateway remembers which key made a decision (feedback from that key only).
    decision_owner_ttl_s: int = Field(default=24 * 3600, ge=60)
    # The routing configuration of the replicas with this fleet name, on the control topic
    # (off: each replica keeps its own); how long a start waits to read it before serving the
    # model file's, and how long a change waits for the write lock and to be read back.
    control_enabled: bool = True
    control_topic: TopicName = ROUTING_CONFIGS.name
    control_audit_topic: TopicName = ROUTING_CONFIG_AUDIT.name
    control_fleet: str = Field(default="default", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    control_start_wait_s: float = Field(default=15.0, ge=0.0)
    control_wait_s: float = Field(default=5.0, gt=0.0)
    # Shadow sampling (``routeiq_gateway.shadow``): the share of requests whose other
    # candidate(s) also answer, off the request path, to be judged blind; 0 = off. JSON
    # {"team": share} overrides it per team ("-": requests without a team). Each team's shadow
    # and judge calls stop at shadow_daily_usd a day, counted in Redis (no Redis: no shadows).
    shadow_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    shadow_team_fractions: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict
    )
    shadow_daily_usd: float = Field(default=1.0, ge=0.0)
    # The model group that judges (the offline upstream serves one as routeiq-judge).
    shadow_judge_group: str = "routeiq-judge"
    shadow_queue_size: int = Field(default=256, ge=1, le=100_000)
    # Shadow jobs run in a worker process (``routeiq_gateway.shadow_worker``); false: on the
    # serving event loop.
    shadow_process: bool = True
    # The worker process's CPU niceness (19: the lowest priority).
    shadow_nice: int = Field(default=19, ge=0, le=19)
    # A shadow job starts only while the gateway's process used fewer cores than this over the
    # last second: a saturated gateway sheds shadow work (queued, then dropped and counted).
    shadow_cpu_limit: float = Field(default=0.7, gt=0.0)
    # The oracle's cheap and strong model groups: verdicts then carry its cell and policy.
    shadow_oracle_cheap: str | None = None
    shadow_oracle_strong: str | None = None

    @field_validator("verify_algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        if value not in {"ed25519", "hmac-sha256"}:
            raise ValueError("must be ed25519 or hmac-sha256")
        return value
