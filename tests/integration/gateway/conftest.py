"""Gateways and the offline upstream as real processes, each test on its own topics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from routeiq.contracts.catalog import (
    DEAD_LETTER,
    FEEDBACK,
    MODEL_ANNOUNCEMENT,
    ROUTER_DECISION,
    ROUTING_CONFIG,
)
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import (
    DEAD_LETTERS,
    FEEDBACK_EVENTS,
    MODEL_ANNOUNCEMENTS,
    ROUTER_DECISIONS,
    ROUTING_CONFIG_AUDIT,
    ROUTING_CONFIGS,
)
from routeiq.routing.bundle import generate_ed25519
from support.kafka import register_values
from support.processes import ServiceProcess, free_port

REPO = Path(__file__).resolve().parents[3]
ADMIN_KEY = "integration-admin-key-0123"


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
    dead letters included; every gateway a test starts shares them."""
    decisions = topic_factory(ROUTER_DECISIONS)
    feedback = topic_factory(FEEDBACK_EVENTS)
    announcements = topic_factory(MODEL_ANNOUNCEMENTS)
    deadletters = topic_factory(DEAD_LETTERS)
    # The fleet's routing configuration: every gateway a test starts is one fleet.
    control = topic_factory(ROUTING_CONFIGS)
    control_audit = topic_factory(ROUTING_CONFIG_AUDIT)
    register_values(
        registry_client,
        {
            decisions.name: ROUTER_DECISION,
            feedback.name: FEEDBACK,
            announcements.name: MODEL_ANNOUNCEMENT,
            deadletters.name: DEAD_LETTER,
            control.name: ROUTING_CONFIG,
            control_audit.name: ROUTING_CONFIG,
        },
    )
    resolver = RegistryResolver(registry_client)
    started: list[ServiceProcess] = []

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
            "ROUTEIQ_GATEWAY_DECISIONS_TOPIC": decisions.name,
            "ROUTEIQ_GATEWAY_FEEDBACK_TOPIC": feedback.name,
            "ROUTEIQ_GATEWAY_ANNOUNCEMENTS_TOPIC": announcements.name,
            "ROUTEIQ_GATEWAY_DEADLETTER_TOPIC": deadletters.name,
            "ROUTEIQ_GATEWAY_CONTROL_TOPIC": control.name,
            "ROUTEIQ_GATEWAY_CONTROL_AUDIT_TOPIC": control_audit.name,
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
            decisions_topic=decisions.name,
            feedback_topic=feedback.name,
            announcements_topic=announcements.name,
            deadletter_topic=deadletters.name,
            control_topic=control.name,
            control_audit_topic=control_audit.name,
            decision_serde=AvroSerde.for_topic(ROUTER_DECISION, decisions.name, resolver=resolver),
            feedback_serde=AvroSerde.for_topic(FEEDBACK, feedback.name, resolver=resolver),
            announcement_serde=AvroSerde.for_topic(
                MODEL_ANNOUNCEMENT, announcements.name, resolver=resolver
            ),
            workdir=workdir,
        )

    yield start
    for proc in started:
        proc.stop()
