"""Gateways and the offline upstream as real processes, each test on its own topics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import TopicSpec, topic
from routeiq.routing.bundle import generate_ed25519
from routeiq_gateway.settings import GatewaySettings
from support.kafka import register_values
from support.processes import ServiceProcess, free_port

REPO = Path(__file__).resolve().parents[3]
ADMIN_KEY = "integration-admin-key-0123"
# Every topic the gateway's settings name (``decisions_topic`` … ``control_audit_topic``) and
# the declared topic its default is: a test's gateway gets a private copy of each, so a topic
# added to the settings can never send a test's records to the shared stack's.
GATEWAY_TOPICS = {
    name: topic(str(field.default))
    for name, field in GatewaySettings.model_fields.items()
    if name.endswith("_topic")
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The offline upstream (recorded benchmark answers), 0 ms latency."""
    port = free_port()
    proc = ServiceProcess(
        "routeiq_upstream",
        {"ROUTEIQ_UPSTREAM_PORT": str(port), "ROUTEIQ_UPSTREAM_DATASETS": '["gsm8k"]'},
        tmp_path_factory.mktemp("upstream") / "upstream.log",
        health_url=f"http://127.0.0.1:{port}/health/ready",
    ).start()
    yield f"http://127.0.0.1:{port}/v1"
    proc.stop()


@pytest.fixture(scope="session")
def signing_keys() -> tuple[str, str]:
    """(private, public) ed25519 keys, base64."""
    return generate_ed25519()


def model_file(path: Path, upstream_url: str, **routeiq: object) -> Path:
    data = yaml.safe_load((REPO / "services/gateway/config/local.yaml").read_text())
    for d in data["model_list"]:
        d["litellm_params"]["api_base"] = upstream_url
    data["routeiq"].update(routeiq)
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class GatewayHandle:
    url: str
    process: ServiceProcess
    decisions_topic: str
    feedback_topic: str
    announcements_topic: str
    deadletter_topic: str
    control_topic: str
    control_audit_topic: str
    decision_serde: AvroSerde
    feedback_serde: AvroSerde
    announcement_serde: AvroSerde
    workdir: Path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def gateway_factory(
    stack, registry_client, topic_factory, upstream, signing_keys, tmp_path: Path
) -> Iterator[Callable[..., GatewayHandle]]:
    """``gateway_factory(**env)``: a gateway on private topics (created and registered), its
    dead letters included; every gateway a test starts shares them (the routing configuration's
    too: every gateway a test starts is one fleet)."""
    topics: dict[str, TopicSpec] = {
        name: topic_factory(spec) for name, spec in GATEWAY_TOPICS.items()
    }
    register_values(registry_client, {spec.name: spec.contract for spec in topics.values()})
    resolver = RegistryResolver(registry_client)
    started: list[ServiceProcess] = []

    def serde(setting: str) -> AvroSerde:
        spec = topics[setting]
        return AvroSerde.for_topic(spec.contract, spec.name, resolver=resolver)

    def start(
        *,
        kafka_bootstrap: str | None = None,
        routeiq: dict | None = None,
        name: str = "gw",
        cache_dir: Path | None = None,
        **env: str,
    ) -> GatewayHandle:
        port = free_port()
        workdir = tmp_path / f"{name}-{port}"
        workdir.mkdir()
        config = model_file(workdir / "models.yaml", upstream, **(routeiq or {}))
        full_env = {
            "ROUTEIQ_GATEWAY_PORT": str(port),
            "ROUTEIQ_GATEWAY_REPLICA_ID": f"{name}-{port}",
            "ROUTEIQ_GATEWAY_CONFIG_PATH": str(config),
            "ROUTEIQ_GATEWAY_ADMIN_KEY": ADMIN_KEY,
            "ROUTEIQ_GATEWAY_DECISION_KEY": "integration-decision-key-01",
            "ROUTEIQ_GATEWAY_USER_SALT": "integration-salt",
            "ROUTEIQ_GATEWAY_VERIFY_KEY": signing_keys[1],
            "ROUTEIQ_GATEWAY_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap
            or stack.kafka.bootstrap_servers,
            "ROUTEIQ_GATEWAY_REGISTRY__URL": stack.registry.url,
            "ROUTEIQ_GATEWAY_S3__ENDPOINT": stack.s3.endpoint,
            "ROUTEIQ_GATEWAY_REDIS__URL": stack.redis.url,
            **{f"ROUTEIQ_GATEWAY_{name.upper()}": spec.name for name, spec in topics.items()},
            "ROUTEIQ_GATEWAY_SPOOL_DIR": str(workdir / "spool"),
            "ROUTEIQ_GATEWAY_MODEL_CACHE_DIR": str(cache_dir or workdir / "cache"),
            "ROUTEIQ_GATEWAY_AUDIT_LOG": str(workdir / "audit.jsonl"),
            "ROUTEIQ_UPSTREAM_API_KEY": "offline",
            **env,
        }
        proc = ServiceProcess(
            "routeiq_gateway",
            full_env,
            workdir / "gateway.log",
            health_url=f"http://127.0.0.1:{port}/health/ready",
        ).start()
        started.append(proc)
        return GatewayHandle(
            url=f"http://127.0.0.1:{port}",
            process=proc,
            **{name: spec.name for name, spec in topics.items()},
            decision_serde=serde("decisions_topic"),
            feedback_serde=serde("feedback_topic"),
            announcement_serde=serde("announcements_topic"),
            workdir=workdir,
        )

    yield start
    for proc in started:
        proc.stop()
