"""Our schema registry as a process against a real Kafka broker.

Each test starts its own registry (``python -m routeiq_schema_registry``) on a free port with a
private ``_schemas_<uuid>`` topic, so it never touches the stack's registry or its subjects;
only ``stack.kafka`` is used from the stack.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from routeiq.kafka import make_admin, make_consumer, make_producer
from routeiq.settings import KafkaSettings
from support.kafka import read_messages
from support.processes import free_port, service_env, spawn_module, stop_process, wait_serving

pytestmark = pytest.mark.integration

CONTENT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}

ORDER_V1 = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "test.registry",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "amount", "type": "double"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
        ],
    }
)
# v2 adds an optional field: FULL-compatible with v1.
ORDER_V2 = json.dumps(
    {
        **json.loads(ORDER_V1),
        "fields": [
            *json.loads(ORDER_V1)["fields"],
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)
# Drops "amount" and adds a required field: neither backward nor forward compatible.
ORDER_BROKEN = json.dumps(
    {
        **json.loads(ORDER_V1),
        "fields": [{"name": "id", "type": "string"}, {"name": "qty", "type": "int"}],
    }
)


@dataclass
class RegistryProcess:
    """One registry process and how to reach it."""

    url: str
    port: int
    topic: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_registry(stack: Any, tmp_path: Path) -> Iterator[Callable[..., RegistryProcess]]:
    """``start_registry(topic=None)``: a ready registry process on a free port; every process
    is stopped and every ``_schemas_*`` topic deleted after the test."""
    started: list[RegistryProcess] = []
    topics: set[str] = set()

    def start(topic: str | None = None) -> RegistryProcess:
        topic = topic or f"_schemas_{uuid.uuid4().hex}"
        topics.add(topic)
        port = free_port()
        env = service_env(
            "ROUTEIQ_REGISTRY_",
            host="127.0.0.1",
            port=str(port),
            topic=topic,
            kafka__bootstrap_servers=stack.kafka.bootstrap_servers,
            startup_timeout_s="60",
        )
        log_path = tmp_path / f"registry-{len(started)}.log"
        process = spawn_module("routeiq_schema_registry", env, log_path)
        reg = RegistryProcess(f"http://127.0.0.1:{port}", port, topic, process, log_path, env)
        started.append(reg)
        wait_serving(process, reg.url, log_path, name="registry", timeout=90.0)
        return reg

    yield start
    for reg in started:
        stop_process(reg.process, timeout=20, kill_timeout=10)
    admin = make_admin(stack.kafka)
    for future in admin.delete_topics(sorted(topics), operation_timeout=30).values():
        future.result()


@pytest.fixture
def registry(start_registry: Callable[..., RegistryProcess]) -> RegistryProcess:
    return start_registry()


@pytest.fixture
def kafka(stack: Any) -> KafkaSettings:
    return stack.kafka


@pytest.fixture
def data_topic(kafka: KafkaSettings) -> Iterator[str]:
    admin = make_admin(kafka)
    name = f"test.registry.orders-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result()
    yield name
    admin.delete_topics([name], operation_timeout=30)[name].result()


def _post(url: str, path: str, body: Any, **params: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, params=params, headers=CONTENT, timeout=30)


def _error_code(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["error_code"]


# ---------------------------------------------------------------- REST


def test_topic_is_created_single_partition_and_compacted(
    registry: RegistryProcess, kafka: KafkaSettings
) -> None:
    admin: AdminClient = make_admin(kafka)
    metadata = admin.list_topics(registry.topic, timeout=10).topics[registry.topic]
    assert len(metadata.partitions) == 1
    (future,) = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, registry.topic)]
    ).values()
    assert future.result(timeout=10)["cleanup.policy"].value == "compact"


def test_rest_round_trip_with_errors(registry: RegistryProcess) -> None:
    url = registry.url
    subject = "orders-value"
    assert httpx.get(f"{url}/").json() == {}
    assert httpx.get(f"{url}/subjects").json() == []

    # Register, then every read right after the write sees it.
    first = _post(url, f"/subjects/{subject}/versions", {"schema": ORDER_V1})
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    assert first.json() == {"id": 1, "version": 1}
    assert httpx.get(f"{url}/subjects").json() == [subject]
    assert _post(url, f"/subjects/{subject}/versions", {"schema": ORDER_V1}).json()["id"] == 1
    assert httpx.put(
        f"{url}/config/{subject}", json={"compatibility": "FULL_TRANSITIVE"}, headers=CONTENT
    ).json() == {"compatibility": "FULL_TRANSITIVE"}
    assert httpx.get(f"{url}/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert _post(url, f"/subjects/{subject}/versions", {"schema": ORDER_V2}).json() == {
        "id": 2,
        "version": 2,
    }
    assert httpx.get(f"{url}/subjects/{subject}/versions").json() == [1, 2]
    latest = httpx.get(f"{url}/subjects/{subject}/versions/latest").json()
    assert (latest["version"], latest["id"]) == (2, 2)
    assert json.loads(latest["schema"])["fields"][-1]["name"] == "note"
    assert httpx.get(f"{url}/schemas/ids/2").json() == {"schema": latest["schema"]}
    assert httpx.get(f"{url}/schemas/ids/2/versions").json() == [{"subject": subject, "version": 2}]
    looked_up = _post(url, f"/subjects/{subject}", {"schema": ORDER_V1}).json()
    assert (looked_up["version"], looked_up["id"]) == (1, 1)
    assert _post(url, "/subjects/copy/versions", {"schema": ORDER_V2}).json() == {
        "id": 2,
        "version": 1,
    }

    # Compatibility: verbose reasons, and a refused registration.
    verdict = _post(
        url,
        f"/compatibility/subjects/{subject}/versions/latest",
        {"schema": ORDER_BROKEN},
        verbose="true",
    ).json()
    assert verdict["is_compatible"] is False
    assert verdict["messages"]
    refused = _post(url, f"/subjects/{subject}/versions", {"schema": ORDER_BROKEN})
    assert _error_code(refused) == (409, 409)
    assert "FULL_TRANSITIVE" in refused.json()["message"]

    # Errors.
    assert _error_code(httpx.get(f"{url}/subjects/nope/versions")) == (404, 40401)
    assert _error_code(httpx.get(f"{url}/subjects/{subject}/versions/9")) == (404, 40402)
    assert _error_code(httpx.get(f"{url}/schemas/ids/999")) == (404, 40403)
    assert _error_code(_post(url, f"/subjects/{subject}", {"schema": ORDER_BROKEN})) == (
        404,
        40403,
    )
    assert _error_code(httpx.get(f"{url}/config/copy")) == (404, 40408)
    bad_schema = _post(url, f"/subjects/{subject}/versions", {"schema": '{"type":"nope"}'})
    assert _error_code(bad_schema) == (422, 42201)
    assert "nope" in bad_schema.json()["message"]
    assert _error_code(httpx.get(f"{url}/subjects/{subject}/versions/zero")) == (422, 42202)
    assert _error_code(
        httpx.put(f"{url}/config", json={"compatibility": "MOSTLY"}, headers=CONTENT)
    ) == (422, 42203)
    malformed = httpx.post(
        f"{url}/subjects/{subject}/versions", content=b"{nope", headers=CONTENT, timeout=10
    )
    assert _error_code(malformed) == (400, 400)
    form = httpx.post(f"{url}/subjects/{subject}/versions", data={"schema": ORDER_V1})
    assert _error_code(form) == (415, 415)
    assert _error_code(httpx.get(f"{url}/no/such/route")) == (404, 404)

    # Soft then permanent deletes.
    assert httpx.delete(f"{url}/subjects/copy?permanent=true").json()["error_code"] == 40405
    assert httpx.delete(f"{url}/subjects/copy").json() == [1]
    assert httpx.get(f"{url}/subjects").json() == [subject]
    assert httpx.get(f"{url}/subjects?deleted=true").json() == ["copy", subject]
    assert httpx.delete(f"{url}/subjects/copy?permanent=true").json() == [1]
    assert httpx.get(f"{url}/subjects?deleted=true").json() == [subject]
    # Id 2 is still held by orders-value v2.
    assert httpx.get(f"{url}/schemas/ids/2").status_code == 200


def test_concurrent_registrations_get_distinct_ids_and_contiguous_versions(
    registry: RegistryProcess,
) -> None:
    httpx.put(f"{registry.url}/config", json={"compatibility": "NONE"}, headers=CONTENT)

    def register(i: int) -> dict[str, int]:
        schema = json.dumps({"type": "record", "name": f"R{i}", "fields": []})
        response = _post(registry.url, "/subjects/busy/versions", {"schema": schema})
        assert response.status_code == 200, response.text
        result: dict[str, int] = response.json()
        return result

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(register, range(24)))
    assert sorted(r["id"] for r in results) == list(range(1, 25))
    assert sorted(r["version"] for r in results) == list(range(1, 25))
    assert httpx.get(f"{registry.url}/subjects/busy/versions").json() == list(range(1, 25))


# ---------------------------------------------------------------- confluent-kafka's client


def _consume(kafka: KafkaSettings, topic: str, count: int) -> list[bytes]:
    consumer = make_consumer(kafka, group_id=f"test-{uuid.uuid4().hex[:8]}", client_id="test")
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = [msg.value() for msg in read_messages(consumer, count, timeout=60)]
    assert len(values) == count
    return values


def test_confluent_serializers_round_trip_through_kafka(
    registry: RegistryProcess, kafka: KafkaSettings, data_topic: str
) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    subject = f"{data_topic}-value"
    ctx = SerializationContext(data_topic, MessageField.VALUE)
    v1_records = [{"id": f"o-{i}", "amount": i * 1.5, "tags": ["a"] * (i % 3)} for i in range(10)]
    v2_records = [{"id": "o-v2", "amount": 2.0, "tags": [], "note": "hello"}]

    # auto.register.schemas (the default): the serializer registers v1.
    auto = AvroSerializer(client, ORDER_V1)
    frames = [auto(r, ctx) for r in v1_records[:4]]
    (v1_id,) = {int.from_bytes(f[1:5], "big") for f in frames}
    assert client.get_latest_version(subject).schema_id == v1_id

    # auto.register.schemas=False: the serializer looks the schema up (a fresh client, no
    # cache), and finds the same id.
    lookup_only = AvroSerializer(
        SchemaRegistryClient({"url": registry.url}),
        ORDER_V1,
        conf={"auto.register.schemas": False},
    )
    frames += [lookup_only(r, ctx) for r in v1_records[4:7]]

    # auto.register.schemas=False with use.latest.version: no schema of its own at all.
    latest_only = AvroSerializer(
        SchemaRegistryClient({"url": registry.url}),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    frames += [latest_only(r, ctx) for r in v1_records[7:]]
    assert {int.from_bytes(f[1:5], "big") for f in frames} == {v1_id}

    # A compatible v2, registered by the client; its records carry the new id.
    v2_id = client.register_schema(subject, Schema(ORDER_V2, "AVRO"))
    assert v2_id != v1_id
    frames += [AvroSerializer(client, ORDER_V2)(r, ctx) for r in v2_records]
    assert int.from_bytes(frames[-1][1:5], "big") == v2_id

    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(ORDER_BROKEN, "AVRO"))
    assert refused.value.http_status_code == 409

    producer = make_producer(kafka, client_id="test-registry")
    for frame in frames:
        producer.produce(data_topic, value=frame)
    assert producer.flush(30) == 0

    values = _consume(kafka, data_topic, len(frames))
    # Each record read back with the schema it was written with.
    reader = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    assert [reader(v, ctx) for v in values] == v1_records + v2_records
    # With use.latest.version every record is resolved to v2 (note defaults to None).
    latest_reader = AvroDeserializer(
        SchemaRegistryClient({"url": registry.url}), conf={"use.latest.version": True}
    )
    assert [latest_reader(v, ctx) for v in values] == [
        {**r, "note": r.get("note")} for r in v1_records + v2_records
    ]


# ---------------------------------------------------------------- restart


def _state(url: str) -> dict[str, Any]:
    """Everything a client can see, through the REST API."""
    state: dict[str, Any] = {"global": httpx.get(f"{url}/config").json(), "subjects": {}}
    for subject in httpx.get(f"{url}/subjects", params={"deleted": "true"}).json():
        versions = httpx.get(f"{url}/subjects/{subject}/versions?deleted=true").json()
        state["subjects"][subject] = {
            "live": httpx.get(f"{url}/subjects/{subject}/versions").json()
            if subject in httpx.get(f"{url}/subjects").json()
            else [],
            "versions": {
                v: httpx.get(f"{url}/subjects/{subject}/versions/{v}?deleted=true").json()
                for v in versions
            },
            "config": httpx.get(f"{url}/config/{subject}").json(),
        }
    return state


def test_a_killed_registry_restarts_with_the_same_state(
    start_registry: Callable[..., RegistryProcess],
) -> None:
    first = start_registry()
    url = first.url
    httpx.put(f"{url}/config", json={"compatibility": "FORWARD"}, headers=CONTENT)
    httpx.put(f"{url}/config/b-value", json={"compatibility": "NONE"}, headers=CONTENT)
    for subject, schema in [
        ("a-value", ORDER_V1),
        ("a-value", ORDER_V2),
        ("b-value", ORDER_V2),
        ("b-value", ORDER_BROKEN),
        ("c-value", ORDER_BROKEN),
        ("d-value", json.dumps({"type": "enum", "name": "E", "symbols": ["X"]})),
    ]:
        response = _post(url, f"/subjects/{subject}/versions", {"schema": schema})
        assert response.status_code == 200, response.text
    assert httpx.delete(f"{url}/subjects/a-value/versions/1").status_code == 200
    assert httpx.delete(f"{url}/subjects/c-value").status_code == 200
    assert httpx.delete(f"{url}/subjects/d-value").status_code == 200
    assert httpx.delete(f"{url}/subjects/d-value?permanent=true").status_code == 200
    before = _state(url)
    assert set(before["subjects"]) == {"a-value", "b-value", "c-value"}

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)

    second = start_registry(topic=first.topic)
    # Reads work right after the registry says it is ready.
    assert _state(second.url) == before
    client = SchemaRegistryClient({"url": second.url})
    assert client.get_compatibility() == "FORWARD"
    assert client.get_compatibility("b-value") == "NONE"
    # Writes continue where the old process stopped: next version, next id.
    new = _post(
        second.url,
        "/subjects/b-value/versions",
        {"schema": json.dumps({"type": "record", "name": "New", "fields": []})},
    ).json()
    assert new == {"version": 3, "id": 5}
    assert httpx.get(f"{second.url}/subjects/b-value/versions/3").json()["id"] == 5
