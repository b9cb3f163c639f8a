"""Private topics' schemas, and reading what a test produced back from Kafka."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, Message
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from routeiq.contracts.catalog import Contract
from routeiq.contracts.topics import topic_subject_name


def register_values(registry: SchemaRegistryClient, contracts: Mapping[str, Contract]) -> None:
    """Register each topic's value contract under its subject (TopicNameStrategy)."""
    for topic, contract in contracts.items():
        registry.register_schema(topic_subject_name(topic), Schema(contract.working_text(), "AVRO"))


def read_messages(
    consumer: Consumer, count: int, *, timeout: float, skip_errors: bool = False
) -> list[Message]:
    """Poll ``consumer`` (already subscribed or assigned) until ``count`` messages or
    ``timeout`` seconds, then close it. End-of-partition events are passed over; any other
    error fails the test unless ``skip_errors``."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                assert skip_errors or error.code() == KafkaError._PARTITION_EOF, error
                continue
            out.append(msg)
    finally:
        consumer.close()
    return out
