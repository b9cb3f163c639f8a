"""The Kafka log's end offset when the admin client is fenced after a broker restart."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from routeiq_schema_registry.errors import StoreError
from routeiq_schema_registry.kafka_log import KafkaSchemaLog

FENCED = KafkaException(KafkaError(KafkaError.FENCED_LEADER_EPOCH))


class _FencedAdmin:
    def list_offsets(self, _request: Any, request_timeout: float) -> Any:
        raise FENCED


class _Consumer:
    def __init__(self, high: int | None) -> None:
        self.high = high

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        assert (tp.topic, tp.partition) == ("_schemas", 0)
        if self.high is None:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return (0, self.high)


def _log(consumer: _Consumer) -> KafkaSchemaLog:
    return KafkaSchemaLog(
        topic="_schemas",
        producer=None,  # type: ignore[arg-type]
        consumer=consumer,  # type: ignore[arg-type]
        admin=_FencedAdmin(),  # type: ignore[arg-type]
    )


def test_a_fenced_admin_client_falls_back_to_the_consumer() -> None:
    assert _log(_Consumer(high=42)).end_offset(timeout_s=1) == 42


def test_both_failing_is_a_store_error_naming_both() -> None:
    with pytest.raises(StoreError, match=r"FENCED_LEADER_EPOCH.*then.*_TRANSPORT"):
        _log(_Consumer(high=None)).end_offset(timeout_s=1)
