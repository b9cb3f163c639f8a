"""Gateway configuration: the model file (environment settings, ``ROUTEIQ_GATEWAY_*``, are in
``settings``).

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
    ValidationError,
    field_validator,
    model_validator,
)
from routeiq.errors import ConfigError

# The replica's environment settings live beside the model file's rules; imported from here too.
from routeiq_gateway.settings import GatewaySettings

__all__ = ["BudgetSpec", "GatewaySettings", "ModelFile", "load_model_file"]

log = logging.getLogger("routeiq_gateway")


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
