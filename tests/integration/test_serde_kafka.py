"""Avro through the real registry and Kafka: our serde and confluent-kafka's interoperate."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.errors import RegistryError
from routeiq.kafka import make_consumer, make_producer
from support.avro_strategies import records
from support.kafka import read_messages

pytestmark = pytest.mark.integration

SCHEMA = ROUTER_DECISION.working_text()


def _consume_all(stack, topic: str, count: int, group: str) -> list:
    consumer = make_consumer(stack.kafka, group_id=group, client_id="test")
    consumer.subscribe([topic])
    return read_messages(consumer, count, timeout=100)


def _canonical(record: dict) -> str:
    """Order-independent form, to compare multisets of records."""
    return json.dumps(record, sort_keys=True, default=str)


def _register(registry_client, subject: str) -> int:
    return registry_client.register_schema(subject, Schema(SCHEMA, "AVRO"))


def test_our_serde_produces_and_consumes_through_kafka(
    stack, registry_client, topic_factory, unique
) -> None:
    spec = topic_factory()
    schema_id = _register(registry_client, spec.value_subject)
    serde = AvroSerde.for_contract(
        ROUTER_DECISION, subject=spec.value_subject, resolver=RegistryResolver(registry_client)
    )
    examples = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data):
        examples.append(data.draw(records(json.loads(SCHEMA))))

    collect()
    producer = make_producer(stack.kafka, client_id="test")
    for record in examples:
        producer.produce(spec.name, key=record["event_id"].encode(), value=serde.encode(record))
    assert producer.flush(30) == 0
    messages = _consume_all(stack, spec.name, len(examples), unique("group"))
    assert serde.schema_id == schema_id
    assert sorted((serde.decode(m.value()) for m in messages), key=_canonical) == sorted(
        examples, key=_canonical
    )


def _decision() -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "trace_id": "0" * 32,
        "span_id": "1" * 16,
        "timestamp": 1_763_000_000_000,
        "input": {"query_length": 42, "requested_model": "auto", "user_id": None, "team_id": "t1"},
        "strategy": {"name": "threshold", "version": "1"},
        "candidate_deployments": [
            {
                "model_name": "gpt-4",
                "provider": "openai",
                "score": 0.7,
                "available": True,
                "propensity": 0.95,
            },
            {
                "model_name": "mixtral",
                "provider": "offline",
                "score": 0.3,
                "available": True,
                "propensity": 0.05,
            },
        ],
        "selected_deployment": "gpt-4",
        "selection_reason": "threshold",
        "timings": {"total_ms": 120.0, "strategy_ms": 3.5, "embedding_ms": 2.9},
        "outcome": {
            "status": "SUCCESS",
            "input_tokens": 10,
            "output_tokens": 20,
            "total_tokens": 30,
            "error_type": None,
            "cost_usd": 0.0012,
            "upstream_latency_ms": 110.0,
        },
        "fallback": {"used": False, "attempted_deployments": [], "reason": None},
        "router_version": "v3",
        "exploration": False,
        "ab_arm": "B",
        "query_embedding": [0.5, -0.25, 1.0],
        "embedding_model": "all-MiniLM-L6-v2",
        "domain": "math",
    }


def test_confluent_serializer_and_our_deserializer_interoperate(
    stack, registry_client, topic_factory, unique
) -> None:
    spec = topic_factory()
    serializer = AvroSerializer(registry_client, SCHEMA, conf={"auto.register.schemas": True})
    record = _decision()
    producer = make_producer(stack.kafka, client_id="test")
    ctx = SerializationContext(spec.name, MessageField.VALUE)
    producer.produce(spec.name, key=record["event_id"].encode(), value=serializer(record, ctx))
    assert producer.flush(30) == 0

    (message,) = _consume_all(stack, spec.name, 1, unique("group"))
    ours = AvroSerde.for_contract(
        ROUTER_DECISION, subject=spec.value_subject, resolver=RegistryResolver(registry_client)
    ).decode(message.value())
    theirs = AvroDeserializer(registry_client)(message.value(), ctx)
    assert ours["event_id"] == theirs["event_id"] == record["event_id"]
    assert ours["candidate_deployments"] == theirs["candidate_deployments"]
    assert ours["timestamp"] == theirs["timestamp"]


def test_producing_an_unregistered_contract_is_refused_by_default(registry_client, unique) -> None:
    serde = AvroSerde.for_contract(
        ROUTER_DECISION,
        subject=unique("never-registered") + "-value",
        resolver=RegistryResolver(registry_client),
    )
    with pytest.raises(RegistryError, match="not registered") as info:
        serde.encode(_decision())
    assert info.value.error_code == 40401
