"""Private topics' schemas, and reading what a test produced back from Kafka."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass
class FakeMessage:
    """confluent-kafka's ``Message`` surface that consumers and the dead-letter sink read."""

    topic_: str = "src"
    partition_: int = 0
    offset_: int = 0
    value_: bytes | None = None
    key_: bytes | None = None
    headers_: list[tuple[str, bytes | None]] | None = None
    # (type, ms): type 0 means the broker set no timestamp.
    timestamp_: tuple[int, int] = (1, 0)
    error_: KafkaError | None = None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def timestamp(self) -> tuple[int, int]:
        return self.timestamp_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self.headers_

    def error(self) -> KafkaError | None:
        return self.error_
