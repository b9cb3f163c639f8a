"""The running local stack is the real thing, fully provisioned."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from confluent_kafka.admin import ConfigResource
from routeiq.contracts.topics import TOPICS
from routeiq.kafka import broker_version
from routeiq.storage import ArtifactStore, make_minio
from routeiq_cli.stack import runner
from support.stack import COMPONENTS

pytestmark = pytest.mark.integration


def test_every_component_is_healthy(stack) -> None:
    assert runner.health(stack.settings) == dict.fromkeys(COMPONENTS)


def test_the_broker_is_apache_kafka_3_9_in_kraft_mode(admin) -> None:
    info = broker_version(admin)
    assert info["inter.broker.protocol.version"].startswith("3.9"), info
    assert info["process.roles"] == "broker,controller"


def test_declared_topics_exist_with_partitions_and_configs(admin) -> None:
    metadata = admin.list_topics(timeout=10).topics
    for spec in TOPICS:
        assert len(metadata[spec.name].partitions) == spec.partitions, spec.name
        (future,) = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, spec.name)]
        ).values()
        actual = {k: v.value for k, v in future.result().items()}
        for key, value in spec.configs.items():
            assert actual[key] == value, (spec.name, key)


def test_every_contract_is_registered_with_its_history_and_level(stack) -> None:
    for spec in TOPICS:
        base = f"{stack.registry.url}/subjects/{spec.value_subject}"
        versions = httpx.get(f"{base}/versions", timeout=10).json()
        assert versions == list(range(1, len(spec.contract.released()) + 1))
        level = httpx.get(f"{stack.registry.url}/config/{spec.value_subject}", timeout=10).json()
        assert level == {"compatibilityLevel": spec.compatibility.value}


def test_buckets_exist_and_the_model_bucket_is_versioned(stack) -> None:
    store = ArtifactStore(make_minio(stack.s3))
    assert store.is_versioned(stack.settings.models_bucket)
    names = {b.name for b in make_minio(stack.s3).list_buckets()}
    assert {
        stack.settings.models_bucket,
        stack.settings.shards_bucket,
        stack.settings.mlflow_bucket,
    } <= names


def test_up_again_is_a_no_op(stack) -> None:
    lines: list[str] = []
    runner.up(stack.settings, echo=lines.append)
    steps = {line.split()[1]: line for line in lines if line.strip().startswith("✓")}
    for name in ("kafka", "schema-registry", "s3", "redis", "mlflow", "jaeger"):
        assert "already running" in steps[name], steps[name]
    assert "unchanged" in steps["topics"]
    assert "unchanged" in steps["schemas"]
    assert "present" in steps["buckets"]


def test_jaeger_takes_otlp_spans_and_serves_them_on_its_query_api(stack) -> None:
    settings = stack.settings
    service = f"stack-test-{secrets.token_hex(4)}"
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    now_ns = time.time_ns()
    # One span in OTLP/HTTP's JSON encoding (ids as hex), as any OTel SDK may send it.
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "stack-test"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "probe",
                                "kind": 1,
                                "startTimeUnixNano": str(now_ns),
                                "endTimeUnixNano": str(now_ns + 1_000_000),
                                "attributes": [{"key": "k", "value": {"stringValue": "v"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    sent = httpx.post(f"{settings.otlp_http_url}/v1/traces", json=body, timeout=10)
    assert sent.status_code == 200, sent.text

    deadline = time.monotonic() + 30
    while True:
        found = httpx.get(f"{settings.jaeger_url}/api/traces/{trace_id}", timeout=10)
        if found.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found.status_code == 200, found.text
    (trace,) = found.json()["data"]
    (span,) = trace["spans"]
    assert (span["traceID"], span["spanID"], span["operationName"]) == (trace_id, span_id, "probe")
    assert trace["processes"][span["processID"]]["serviceName"] == service
    assert {"key": "k", "type": "string", "value": "v"} in span["tags"]
    services = httpx.get(f"{settings.jaeger_url}/api/services", timeout=10).json()["data"]
    assert service in services
