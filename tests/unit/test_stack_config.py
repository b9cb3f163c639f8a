"""The local stack's generated configuration (no process is started here)."""

from __future__ import annotations

import configparser

from routeiq_cli.stack.components import _kafka_properties, components
from routeiq_cli.stack.settings import StackSettings
from routeiq_cli.stack.supervisor import render_config
from support.stack import COMPONENTS


def _settings(tmp_path) -> StackSettings:
    return StackSettings.load(
        {
            "ROUTEIQ_STACK_STATE_DIR": str(tmp_path),
            "ROUTEIQ_STACK_KAFKA_PORT": "29092",
            "ROUTEIQ_STACK_REDIS_PORT": "26379",
        }
    )


def test_supervisord_config_declares_every_component_in_order(tmp_path) -> None:
    settings = _settings(tmp_path)
    comps = components(settings)
    parser = configparser.RawConfigParser()
    parser.read_string(render_config(settings, comps))
    programs = [s.split(":", 1)[1] for s in parser.sections() if s.startswith("program:")]
    assert programs == list(COMPONENTS)
    infra = [c.name for c in comps if c.phase == "infra"]
    assert infra == programs[:5]  # services start only after topics and schemas
    for name in programs:
        section = parser[f"program:{name}"]
        # The runner starts programs itself, one at a time, gated on health checks.
        assert section["autostart"] == "false"
        assert section["stdout_logfile"].startswith(str(tmp_path.resolve()))
    assert "--port 26379" in parser["program:redis"]["command"]
    assert 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"' in parser["program:mlflow"]["environment"]
    # JSON values are single-quoted: supervisord's parser takes no backslash escapes.
    assert (
        """ROUTEIQ_LABELER_RETRAIN_ROUTER_TYPES='["knn","svm","mlp","mf"]'"""
        in parser["program:labeler"]["environment"]
    )


def test_extra_gateway_replicas_get_their_own_ports(tmp_path) -> None:
    settings = StackSettings.load(
        {"ROUTEIQ_STACK_STATE_DIR": str(tmp_path), "ROUTEIQ_STACK_GATEWAY_REPLICAS": "3"}
    )
    gateways = [c for c in components(settings) if c.name.startswith("gateway")]
    assert [c.ports for c in gateways] == [[8000], [8001], [8002]]
    caches = {c.environment["ROUTEIQ_GATEWAY_MODEL_CACHE_DIR"] for c in gateways}
    assert len(caches) == 1  # one cache volume shared by the replicas


def test_kafka_runs_kraft_with_declared_topics_only(tmp_path) -> None:
    props = dict(
        line.split("=", 1)
        for line in _kafka_properties(_settings(tmp_path), tmp_path / "data").splitlines()
        if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"].startswith("PLAINTEXT://127.0.0.1:29092")
    assert props["auto.create.topics.enable"] == "false"
