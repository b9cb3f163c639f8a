"""Gateway configuration: environment settings (``ROUTEIQ_GATEWAY_*``) and the model file.

The model file is a LiteLLM proxy config (``model_list``, ``router_settings``, ...), so people
who run LiteLLM recognise it, plus a ``routeiq:`` section for routing: which model groups are
routing candidates, the strategies, the default, A/B weights, domain overrides, exploration
rate and the learned router to follow. Everything is validated at start; an invalid file or
setting stops the gateway with the field that is wrong.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict
from routeiq.contracts.topics import (
    DEAD_LETTERS,
    FEEDBACK_EVENTS,
    MODEL_ANNOUNCEMENTS,
    ROUTER_DECISIONS,
)
from routeiq.errors import ConfigError
from routeiq.settings import (
    KafkaSettings,
    RedisSettings,
    RegistrySettings,
    S3Settings,
    ServiceSettings,
    TelemetrySettings,
    TopicName,
)

log = logging.getLogger("routeiq_gateway")


class GatewaySettings(ServiceSettings):
    """Environment settings of one gateway replica."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_GATEWAY_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    config_path: Path
    # Secrets: the admin API key, the key that signs decision ids (shared by all replicas so
    # feedback is accepted by any of them) and the salt for hashing user ids into events.
    admin_key: SecretStr
    decision_key: SecretStr
    user_salt: SecretStr
    replica_id: str = "gateway-1"
    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    s3: S3Settings = S3Settings()
    redis: RedisSettings = RedisSettings()
    telemetry_enabled: bool = True
    include_embedding: bool = True
    decisions_topic: str = ROUTER_DECISIONS.name
    feedback_topic: str = FEEDBACK_EVENTS.name
    announcements_topic: str = MODEL_ANNOUNCEMENTS.name
    # Where announcement records this gateway cannot decode or validate go, once each.
    deadletter_topic: TopicName = DEAD_LETTERS.name
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

    @field_validator("admin_key", "decision_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("verify_algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        if value not in {"ed25519", "hmac-sha256"}:
            raise ValueError("must be ed25519 or hmac-sha256")
        return value


# ---------------------------------------------------------------- the model file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CandidateSpec(_Strict):
    quality_rank: float = 0.0
    expected_output_tokens: int = Field(default=256, ge=1)


class StrategySpec(_Strict):
    name: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class RolloutSpec(_Strict):
    """A strategy rolled out in phases (``routeiq.routing.engine.Rollout``)."""

    strategy: str
    percent: float = Field(default=0.0, ge=0.0, le=100.0)
    teams: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    monitoring_only: bool = False


class BudgetSpec(_Strict):
    """A team's spending limits in USD (real spend: usage × the model file's prices)."""

    daily_usd: float | None = Field(default=None, gt=0)
    monthly_usd: float | None = Field(default=None, gt=0)
    # Past this share of a limit the team's routed requests are downgraded (the cost rule);
    # at the limit itself they are refused.
    soft_fraction: float = Field(default=0.8, gt=0, le=1)
    # Once over the soft limit: the strongest candidate estimated at or under this per-request
    # cost serves, else the cheapest (0: always the cheapest).
    downgrade_request_usd: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSpec:
        if self.daily_usd is None and self.monthly_usd is None:
            raise ValueError("a budget needs daily_usd, monthly_usd or both")
        return self


class RouteIQSection(_Strict):
    # Model names a client sends to ask RouteIQ to choose (anything else is a direct call).
    route_aliases: list[str] = Field(default_factory=lambda: ["auto", "routeiq"])
    candidates: dict[str, CandidateSpec] = Field(default_factory=dict)
    strategies: list[StrategySpec] = Field(default_factory=list)
    default_strategy: str = "cheapest"
    epsilon: float = Field(default=0.05, ge=0.0, le=1.0)
    ab: dict[str, float] = Field(default_factory=dict)
    domain_overrides: dict[str, str] = Field(default_factory=dict)
    # Who the rolled-out strategy serves (None: nobody), and the switch that sends everything
    # to default_strategy at once.
    rollout: RolloutSpec | None = None
    kill_switch: bool = False
    # The learned router (the announcement key) this gateway follows; None: no model sync.
    router_name: str | None = None
    # Team → budget; "*" applies to every team not named.
    budgets: dict[str, BudgetSpec] = Field(default_factory=dict)


# What RouteIQ reads of a LiteLLM proxy config; everything else LiteLLM knows is accepted and
# named in one warning at start (``ModelFile.unsupported``), anything else is a typo, refused.
SUPPORTED_GENERAL = frozenset({"master_key"})
SUPPORTED_LITELLM = frozenset({"drop_params"})
LITELLM_SECTIONS = frozenset(
    {
        "assistant_settings",
        "callback_settings",
        "credential_list",
        "files_settings",
        "finetune_settings",
        "guardrails",
        "include",
        "mcp_servers",
        "prompts",
        "search_tools",
        "vector_store_registry",
    }
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_REF = "os.environ/"


@cache
def router_parameters() -> frozenset[str]:
    """The ``router_settings`` keys ``litellm.Router`` takes (the rest would crash it)."""
    from litellm.router import Router  # heavy: only when a model file is read

    return frozenset(inspect.signature(Router.__init__).parameters) - {"self", "model_list"}


class ModelFile(BaseModel):
    """A LiteLLM proxy config, accepted as LiteLLM users write it, with a ``routeiq`` section."""

    # LiteLLM's other sections are kept (``extra``) to be named in the start warning.
    model_config = ConfigDict(extra="allow")

    model_list: list[dict[str, Any]]
    router_settings: dict[str, Any] = Field(default_factory=dict)
    litellm_settings: dict[str, Any] = Field(default_factory=dict)
    general_settings: dict[str, Any] = Field(default_factory=dict)
    environment_variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    routeiq: RouteIQSection = Field(default_factory=RouteIQSection)
    _ignored_router: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _litellm_sections(self) -> ModelFile:
        unknown = sorted(set(self.model_extra or {}) - LITELLM_SECTIONS)
        if unknown:
            raise ValueError(
                f"unknown section(s) {unknown}: a LiteLLM proxy config has model_list, "
                "router_settings, litellm_settings, general_settings, environment_variables"
            )
        # Router keys litellm.Router does not take would refuse the whole file at start.
        known = router_parameters()
        self._ignored_router = sorted(k for k in self.router_settings if k not in known)
        for key in self._ignored_router:
            del self.router_settings[key]
        return self

    @field_validator("environment_variables")
    @classmethod
    def _env_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(k for k in value if not _ENV_NAME.match(k))
        if bad:
            raise ValueError(f"{bad} are not environment variable names")
        return value

    @field_validator("general_settings")
    @classmethod
    def _general(cls, value: dict[str, Any]) -> dict[str, Any]:
        key = value.get("master_key")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise ValueError("master_key must be a non-empty string (or os.environ/NAME)")
        return value

    def unsupported(self) -> list[str]:
        """What this file configures that RouteIQ does not act on (for the start warning)."""
        names = sorted(self.model_extra or {})
        names += [f"router_settings.{k}" for k in self._ignored_router]
        names += [f"general_settings.{k}" for k in sorted(self.general_settings)]
        names = [n for n in names if n.removeprefix("general_settings.") not in SUPPORTED_GENERAL]
        names += [f"litellm_settings.{k}" for k in sorted(set(self.litellm_settings))]
        return [n for n in names if n.removeprefix("litellm_settings.") not in SUPPORTED_LITELLM]

    def resolve(self, value: str) -> str:
        """``os.environ/NAME`` (LiteLLM's reference) → the process's value, else the file's
        ``environment_variables``; ``ConfigError`` when neither has it."""
        if not value.startswith(ENV_REF):
            return value
        name = value[len(ENV_REF) :]
        found = os.environ.get(name, self.environment_variables.get(name))
        if found is None or str(found) == "":
            raise ConfigError(f"{value} is not set (neither in the environment nor the file)")
        return str(found)

    @property
    def master_key(self) -> str | None:
        """``general_settings.master_key``, its ``os.environ/`` reference resolved."""
        raw = self.general_settings.get("master_key")
        return None if raw is None else self.resolve(str(raw))

    def apply_environment(self) -> None:
        """Export ``environment_variables`` as LiteLLM's proxy does, so ``os.environ/``
        references in ``litellm_params`` resolve; a variable the process already has wins
        (the deployment overrides the file)."""
        for name, value in self.environment_variables.items():
            os.environ.setdefault(
                name, str(value).lower() if isinstance(value, bool) else str(value)
            )

    @field_validator("model_list")
    @classmethod
    def _deployments(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not value:
            raise ValueError("model_list is empty: configure at least one model")
        for i, d in enumerate(value):
            if not isinstance(d, dict) or not d.get("model_name"):
                raise ValueError(f"model_list[{i}] needs a model_name")
            params = d.get("litellm_params")
            if not isinstance(params, dict) or not params.get("model"):
                raise ValueError(f"model_list[{i}] ({d['model_name']}) needs litellm_params.model")
        return value

    @property
    def model_groups(self) -> list[str]:
        seen: dict[str, None] = {}
        for d in self.model_list:
            seen.setdefault(str(d["model_name"]), None)
        return list(seen)

    def prices(self, group: str) -> tuple[float, float]:
        """USD per million input/output tokens from LiteLLM's ``model_info`` cost fields."""
        for d in self.model_list:
            if d["model_name"] == group:
                info = d.get("model_info") or {}
                params = d.get("litellm_params") or {}
                per_in = info.get("input_cost_per_token", params.get("input_cost_per_token", 0.0))
                per_out = info.get(
                    "output_cost_per_token", params.get("output_cost_per_token", 0.0)
                )
                return float(per_in) * 1e6, float(per_out) * 1e6
        return 0.0, 0.0

    def provider(self, group: str) -> str:
        for d in self.model_list:
            if d["model_name"] == group:
                model = str(d["litellm_params"]["model"])
                return model.split("/", 1)[0] if "/" in model else "openai"
        return "unknown"

    def check(self) -> None:
        """Cross-field rules: candidates exist, aliases do not shadow model groups."""
        groups = set(self.model_groups)
        rq = self.routeiq
        unknown = set(rq.candidates) - groups
        if unknown:
            raise ConfigError(
                f"routeiq.candidates names unknown model groups {sorted(unknown)}; "
                f"model_list has {sorted(groups)}"
            )
        clash = set(rq.route_aliases) & groups
        if clash:
            raise ConfigError(f"routeiq.route_aliases {sorted(clash)} are also model groups")
        names = [s.name for s in rq.strategies]
        if len(names) != len(set(names)):
            raise ConfigError(f"routeiq.strategies has duplicate names: {names}")
        _ = self.master_key  # an os.environ/ reference that resolves to nothing stops the start

    @property
    def candidate_groups(self) -> list[str]:
        """Model groups RouteIQ routes between (all of them when none are listed)."""
        return list(self.routeiq.candidates) or self.model_groups


def load_model_file(path: Path) -> ModelFile:
    """Parse and validate the model file; ``ConfigError`` names the offending field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"model file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"model file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"model file {path} must be a mapping with model_list")
    try:
        parsed = ModelFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"model file {path}: {problems}") from exc
    parsed.check()
    ignored = parsed.unsupported()
    if ignored:
        # One line at start, so an operator sees what of their LiteLLM file has no effect here.
        log.warning("model file %s: RouteIQ does not act on %s", path, ", ".join(ignored))
    return parsed
