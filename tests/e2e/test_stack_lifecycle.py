"""`make up` / `make up` / `make down && make up` / `make clean` on a private stack.

Runs a second stack on its own ports and state folder, so the shared developer stack is
untouched: up → up again is a no-op → down → up keeps every topic, message and schema → clean.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.catalog import FEEDBACK
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import FEEDBACK_EVENTS, TOPICS
from routeiq.errors import ConfigError
from routeiq.kafka import make_consumer, make_producer
from routeiq_cli.stack import runner
from routeiq_cli.stack.components import port_open
from routeiq_cli.stack.components.base import port_taken
from routeiq_cli.stack.settings import StackSettings
from support.kafka import read_messages
from support.ports import PRIVATE_STACK_PORTS

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_stack(tmp_path_factory):
    env = {f"ROUTEIQ_STACK_{k}": str(v) for k, v in PRIVATE_STACK_PORTS.items()}
    env["ROUTEIQ_STACK_STATE_DIR"] = str(tmp_path_factory.mktemp("stack") / "state")
    env["ROUTEIQ_STACK_KAFKA_HEAP"] = "384m"
    settings = StackSettings.load(env)
    # The fixed ports, gRPC ones included, must lie outside this machine's ephemeral range
    # (read now, not assumed): inside it any connection may hold one as its client port.
    try:
        settings.refuse_ephemeral_ports()
    except ConfigError as exc:
        pytest.fail(f"the lifecycle test's fixed ports cannot be used on this machine: {exc}")
    ports = settings.listen_ports()
    busy = [f"{p.label} {p.port}" for p in ports if port_taken(settings.host, p.port)]
    if busy:
        pytest.fail(f"ports taken ({', '.join(busy)}); the lifecycle test needs them free")
    yield settings
    runner.clean(settings, echo=lambda _: None)


def _steps(lines: list[str]) -> dict[str, str]:
    return {line.split()[1]: line for line in lines if line.strip().startswith("✓")}


def _feedback(i: int) -> dict:
    return {
        "feedback_id": str(uuid.uuid4()),
        "decision_id": f"d-{i}",
        "score": i / 10,
        "source": "test",
        "created_at": 1_763_000_000_000 + i,
    }


def _read_all(settings: StackSettings, serde: AvroSerde, expected: int) -> list[dict]:
    consumer = make_consumer(
        settings.kafka,
        group_id=f"lifecycle-{uuid.uuid4().hex[:6]}",
        client_id="test",
        overrides={"session.timeout.ms": 6000},
    )
    consumer.subscribe([FEEDBACK_EVENTS.name])
    messages = read_messages(consumer, expected, timeout=60, skip_errors=True)
    return [serde.decode(msg.value()) for msg in messages]


def _registry_state(settings: StackSettings) -> dict:
    url = settings.registry.url
    state = {}
    for spec in TOPICS:
        subject = spec.value_subject
        versions = httpx.get(f"{url}/subjects/{subject}/versions", timeout=10).json()
        state[subject] = [
            httpx.get(f"{url}/subjects/{subject}/versions/{v}", timeout=10).json()["id"]
            for v in versions
        ]
    return state


def test_up_noop_down_up_keeps_everything_then_clean(private_stack) -> None:
    settings = private_stack
    first: list[str] = []
    runner.up(settings, echo=first.append)
    steps = _steps(first)
    for name in ("kafka", "schema-registry", "s3", "redis", "mlflow", "jaeger"):
        assert "started" in steps[name]
    assert f"{len(TOPICS)} created" in steps["topics"]
    # Every released version of each topic's contract, under that topic's subject.
    versions = sum(len(spec.contract.released()) for spec in TOPICS)
    assert f"{versions} registered" in steps["schemas"]

    registry = SchemaRegistryClient(settings.registry.client_config())
    serde = AvroSerde.for_contract(
        FEEDBACK, subject=FEEDBACK_EVENTS.value_subject, resolver=RegistryResolver(registry)
    )
    producer = make_producer(settings.kafka, client_id="lifecycle")
    sent = [_feedback(i) for i in range(5)]
    for record in sent:
        producer.produce(
            FEEDBACK_EVENTS.name, key=record["decision_id"], value=serde.encode(record)
        )
    assert producer.flush(30) == 0
    schemas_before = _registry_state(settings)

    again: list[str] = []
    runner.up(settings, echo=again.append)
    steps = _steps(again)
    assert all(
        "already running" in steps[n]
        for n in ("kafka", "schema-registry", "s3", "redis", "mlflow", "jaeger")
    )
    assert "unchanged" in steps["topics"]
    assert "unchanged" in steps["schemas"]

    runner.down(settings, echo=lambda _: None)
    assert not any(port_open(settings.host, p) for p in PRIVATE_STACK_PORTS.values())
    assert any(problem is not None for problem in runner.health(settings).values())

    runner.up(settings, echo=lambda _: None)
    assert _registry_state(settings) == schemas_before
    received = _read_all(settings, serde, len(sent))
    assert sorted(r["decision_id"] for r in received) == sorted(r["decision_id"] for r in sent)
    assert {r["feedback_id"] for r in received} == {r["feedback_id"] for r in sent}

    runner.clean(settings, echo=lambda _: None)
    assert not settings.state.exists()
