"""A strategy kind from an installed package serves from the model file like a built-in."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import yaml
from routeiq.errors import ConfigError
from routeiq_gateway.gateway import Gateway
from routeiq_gateway.routing import Plan
from unit.routing.plugin_env import Site, open_site

from .conftest import MODEL_FILE, CollectingPublisher, offline_gateway

SHORT, LONG = "2+2?", "Please explain, step by step, why the sky looks blue at noon."


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Site]:
    yield from open_site(monkeypatch, tmp_path)


def gateway_with(tmp_path: Path, strategy: dict) -> Gateway:
    """The offline gateway on the conftest's model file with ``strategy`` as its default."""
    raw = copy.deepcopy(MODEL_FILE)
    raw["routeiq"]["strategies"].append(strategy)
    raw["routeiq"]["default_strategy"] = strategy["name"]
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    return offline_gateway(path, CollectingPublisher())


def plan(gateway: Gateway, text: str) -> Plan:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    return anyio.run(gateway.plan, body, {})


# StrategyRegistry.build (routeiq/routing/engine.py) builds the built-in kinds only until it
# falls back to ``strategy_class(kind).from_config``; this marker goes with that change.
def test_a_plugin_strategy_in_the_model_file_routes_through_the_planner(
    site: Site, tmp_path: Path
) -> None:
    site.install_example()
    spec = {"name": "by-length", "kind": "example_length", "params": {"max_chars": 20}}
    gateway = gateway_with(tmp_path, spec)
    short, long = plan(gateway, SHORT), plan(gateway, LONG)
    assert (short.group, long.group) == ("small", "big")
    assert short.decision.strategy == "by-length"
    assert short.decision.strategy_version == "example_length/1"
    assert short.decision.propensities == {"big": 0.0, "small": 1.0}  # the file's ε is 0
    assert "chars <= 20: cheapest candidate" in short.decision.reason
    # Its parameters are checked at start like a built-in's.
    bad = {"name": "by-length", "kind": "example_length", "params": {"max_chars": "many"}}
    with pytest.raises(ConfigError, match="max_chars must be a positive integer"):
        gateway_with(tmp_path / "bad", bad)


def test_a_broken_strategy_plugin_stops_the_gateway_naming_it(site: Site, tmp_path: Path) -> None:
    site.install(
        "broken-strategies",
        {"routeiq.strategies": {"sloppy": "no_such_module_anywhere:Sloppy"}},
    )
    with pytest.raises(ConfigError) as raised:
        gateway_with(tmp_path, {"name": "s", "kind": "sloppy", "params": {}})
    assert "'sloppy = no_such_module_anywhere:Sloppy'" in str(raised.value)
    assert "of distribution broken-strategies cannot be imported" in str(raised.value)
