"""Strategy administration as one transaction: register new strategies and re-split traffic,
all or nothing.

The admin API (``PUT /admin/strategies``) hands the request body to ``parse_strategy_change``
and the result to ``apply_strategy_change``. Every new strategy is built and the new routing
configuration validated against the old and new names before anything is installed, so a
request that is wrong anywhere leaves the engine exactly as it was. Errors are
``ConfigError`` with the reason; nothing here does I/O.

A fleet keeps its configuration as versions on the control topic, each the whole
configuration on top of the model file: ``merge_change`` folds a change into the current
version, ``rebuild`` builds a version on a fresh engine (which validates it), and the
engine adopts the result in one step. A version depends on the model file and nothing
else, so every replica, restarted or not, serves the same one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from routeiq.errors import ConfigError
from routeiq.routing.engine import Rollout, RoutingConfig, RoutingEngine

# The fields a strategy change may carry; anything else is refused (a typo must not pass).
CHANGE_FIELDS = (
    "register",
    "default",
    "ab",
    "domain_overrides",
    "epsilon",
    "rollout",
    "kill_switch",
)
ROLLOUT_FIELDS = ("strategy", "percent", "teams", "domains", "monitoring_only")


@dataclass(frozen=True)
class StrategySpec:
    """One strategy to register: its name, kind and parameters."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyChange:
    """Strategies to register and the routing-configuration fields to change."""

    register: tuple[StrategySpec, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)


def parse_strategy_change(body: Mapping[str, Any]) -> StrategyChange:
    """Check the shape of a strategy change (field names and types), not its meaning."""
    unknown = set(body) - set(CHANGE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(CHANGE_FIELDS)}")
    register = body.get("register", [])
    if not isinstance(register, list):
        raise ConfigError("'register' must be a list of {name, kind, params}")
    specs = []
    for i, spec in enumerate(register):
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("name"), str)
            or not isinstance(spec.get("kind"), str)
        ):
            raise ConfigError(f"register[{i}] needs string 'name' and 'kind'")
        params = spec.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"register[{i}].params must be an object")
        specs.append(StrategySpec(spec["name"], spec["kind"], params))
    config: dict[str, Any] = {}
    if "default" in body:
        if not isinstance(body["default"], str):
            raise ConfigError(f"'default' must be a strategy name, got {body['default']!r}")
        config["default"] = body["default"]
    if "ab" in body:
        if not isinstance(body["ab"], dict):
            raise ConfigError("'ab' must map strategy names to weights")
        config["ab"] = {str(k): _number(v, f"ab[{k!r}]") for k, v in body["ab"].items()}
    if "domain_overrides" in body:
        if not isinstance(body["domain_overrides"], dict):
            raise ConfigError("'domain_overrides' must map domains to strategy names")
        config["domain_overrides"] = {str(k): str(v) for k, v in body["domain_overrides"].items()}
    if "epsilon" in body:
        config["epsilon"] = _number(body["epsilon"], "epsilon")
    if "rollout" in body:
        # null ends the rollout; an object replaces it whole.
        config["rollout"] = None if body["rollout"] is None else rollout_from(body["rollout"])
    if "kill_switch" in body:
        if not isinstance(body["kill_switch"], bool):
            raise ConfigError("'kill_switch' must be true or false")
        config["kill_switch"] = body["kill_switch"]
    return StrategyChange(register=tuple(specs), config=config)


def rollout_from(raw: Any) -> Rollout:
    """A rollout from its JSON shape (``{strategy, percent, teams, domains,
    monitoring_only}``); whether its strategy exists is the configuration's check."""
    if not isinstance(raw, dict):
        raise ConfigError("'rollout' must be an object {strategy, percent, teams, domains, ...}")
    unknown = set(raw) - set(ROLLOUT_FIELDS)
    if unknown:
        raise ConfigError(f"rollout: unknown field(s) {sorted(unknown)}; allowed: {ROLLOUT_FIELDS}")
    if not isinstance(raw.get("strategy"), str):
        raise ConfigError("rollout needs a string 'strategy'")
    names = {}
    for key in ("teams", "domains"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"rollout.{key} must be a list of strings")
        names[key] = frozenset(value)
    monitoring = raw.get("monitoring_only", False)
    if not isinstance(monitoring, bool):
        raise ConfigError("rollout.monitoring_only must be true or false")
    return Rollout(
        strategy=raw["strategy"],
        percent=_number(raw.get("percent", 0.0), "rollout.percent"),
        teams=names["teams"],
        domains=names["domains"],
        monitoring_only=monitoring,
    )


def apply_strategy_change(engine: RoutingEngine, change: StrategyChange) -> RoutingConfig:
    """Install ``change`` on ``engine`` whole, or raise ``ConfigError`` having changed nothing."""
    registry = engine.registry
    for spec in change.register:
        if not spec.name or len(spec.name) > 64:
            raise ConfigError(f"strategy name {spec.name!r} must be 1-64 characters")
        # Build first: an invalid strategy is refused before any is registered.
        registry.build(spec.name, spec.kind, spec.params)
    new_names = [spec.name for spec in change.register]
    replace(engine.config, **change.config).validate(registry.names() + new_names)
    for spec in change.register:
        registry.register(spec.name, spec.kind, spec.params)
    return engine.configure(**change.config)


def _number(value: Any, what: str) -> float:
    # float() as before, but a value it refuses is the caller's 400, not a server error.
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"'{what}' must be a number, got {value!r}") from None


def merge_change(config: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """The whole configuration after ``change`` (both in the strategy change's JSON shape):
    the fields the change sets replace the configuration's, and its strategies are added, a
    name registered again replacing the earlier one."""
    merged = {k: v for k, v in config.items() if k != "register"}
    merged.update({k: v for k, v in change.items() if k != "register"})
    specs = {spec["name"]: spec for spec in config.get("register", [])}
    specs.update({spec["name"]: spec for spec in change.get("register", [])})
    if specs:
        merged["register"] = list(specs.values())
    return merged


def rebuild(base: Callable[[], RoutingEngine], config: Mapping[str, Any]) -> RoutingEngine:
    """A fresh engine (``base``: the model file's) with the whole ``config`` applied, or
    ``ConfigError`` saying why that configuration cannot be served here."""
    change = parse_strategy_change(config)
    engine = base()
    # One by one on the scratch engine (nothing serves it yet), so a learned strategy finds a
    # fallback registered in the same version: everything else first, as the model file does.
    for spec in sorted(change.register, key=lambda spec: spec.kind == "learned"):
        engine.registry.register(spec.name, spec.kind, spec.params)
    engine.configure(**change.config)
    return engine
