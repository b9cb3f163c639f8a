"""The local stack's generated configuration (no process is started here)."""

from __future__ import annotations

import configparser
import re

import pytest
import yaml
from routeiq.errors import ConfigError
from routeiq_cli.stack.components import _kafka_properties, components
from routeiq_cli.stack.components.jaeger import jaeger_config
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
    assert infra == programs[:6]  # services start only after topics and schemas
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


def _jaeger_settings(tmp_path, **ports: int) -> StackSettings:
    return StackSettings.load(
        {"ROUTEIQ_STACK_STATE_DIR": str(tmp_path), "ROUTEIQ_STACK_BUILD_DIR": str(tmp_path)}
        | {f"ROUTEIQ_STACK_{name.upper()}": str(port) for name, port in ports.items()}
    )


def test_jaeger_listens_where_the_settings_say_and_the_gateways_export_to_it(tmp_path) -> None:
    settings = _jaeger_settings(
        tmp_path,
        jaeger_port=26686,
        jaeger_grpc_port=26685,
        otlp_grpc_port=24317,
        otlp_http_port=24318,
    )
    by_name = {c.name: c for c in components(settings)}
    jaeger = by_name["jaeger"]
    assert sorted(jaeger.ports) == [24317, 24318, 26685, 26686]
    assert jaeger.endpoint == "http://127.0.0.1:26686"
    assert jaeger.command[0] == str(tmp_path / "bin" / "jaeger")
    # Every ${env:NAME} in the config is one the component's environment sets.
    text = yaml.safe_dump(jaeger_config())
    wanted = set(re.findall(r"\$\{env:([A-Z_]+)\}", text))
    assert wanted == set(jaeger.environment)
    assert sorted(jaeger.environment.values()) == [
        "127.0.0.1:24317",
        "127.0.0.1:24318",
        "127.0.0.1:26685",
        "127.0.0.1:26686",
        "50000",
    ]
    # Every gateway exports its spans to Jaeger's OTLP/HTTP receiver.
    assert by_name["gateway"].environment["ROUTEIQ_GATEWAY_TELEMETRY__OTLP_ENDPOINT"] == (
        "http://127.0.0.1:24318"
    )


def test_jaeger_stores_traces_in_memory_and_runs_only_otlp_in(tmp_path) -> None:
    config = jaeger_config()
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    store = config["exporters"]["jaeger_storage_exporter"]["trace_storage"]
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] == store
    assert set(config["extensions"]["jaeger_storage"]["backends"][store]) == {"memory"}
    # No internal metrics server: its default port (8888) is SeaweedFS's filer.
    assert config["service"]["telemetry"]["metrics"] == {"level": "none"}


def test_jaeger_ports_are_stack_ports(tmp_path) -> None:
    defaults = _jaeger_settings(tmp_path)
    listen = {p.setting: p.port for p in defaults.listen_ports()}
    assert {k: listen[k] for k in listen if "jaeger" in k or "otlp" in k} == {
        "jaeger_port": 16686,
        "jaeger_grpc_port": 16685,
        "otlp_grpc_port": 4317,
        "otlp_http_port": 4318,
    }
    with pytest.raises(ConfigError, match="gateway_port and otlp_http_port both use port 8000"):
        _jaeger_settings(tmp_path, otlp_http_port=8000)
    inside = _jaeger_settings(tmp_path, otlp_grpc_port=40000)
    with pytest.raises(ConfigError, match=r"otlp_grpc_port=40000 \[ROUTEIQ_STACK_OTLP_GRPC_PORT\]"):
        inside.refuse_ephemeral_ports()


def test_jaeger_refuses_to_start_unbuilt(tmp_path) -> None:
    (jaeger,) = [c for c in components(_jaeger_settings(tmp_path)) if c.name == "jaeger"]
    assert jaeger.prepare is not None
    with pytest.raises(ConfigError, match=r"stack/install-jaeger\.sh"):
        jaeger.prepare()
