"""Model announcements to Kafka (compacted, keyed by model name): what every gateway serves.

Each waits for the broker's acknowledgement (idempotent producer, ``acks=all``) and raises
``TransportError`` when it does not come, so the caller never records a step as done that
the log does not hold. (Dead letters go through ``routeiq.deadletters.DeadLetterSink``.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import TransportError

from routeiq_trainer.bundles import BundleLocation

PROMOTE = "PROMOTE"
ROLLBACK = "ROLLBACK"


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, *, timeout_s: float) -> None:
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    try:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
    except (KafkaException, BufferError) as exc:
        raise TransportError(f"cannot produce to {topic}: {exc}") from exc
    remaining = producer.flush(timeout_s)
    if remaining:
        raise TransportError(f"{topic}: not acknowledged within {timeout_s:.0f}s")
    if errors:
        raise TransportError(f"{topic}: delivery failed: {errors[0]}")


def announcement_record(
    *,
    model_name: str,
    version: str,
    action: str,
    router_type: str,
    bundle: BundleLocation,
    signature: Mapping[str, str],
    metrics: Mapping[str, float],
    previous_version: str | None,
    mlflow_run_id: str | None,
    mlflow_model_version: str | None,
    reason: str,
    announced_by: str,
) -> dict[str, Any]:
    """The ``ModelAnnouncement`` record (a new announcement id, stamped now)."""
    if action not in {PROMOTE, ROLLBACK}:
        raise ValueError(f"action must be {PROMOTE} or {ROLLBACK}, got {action!r}")
    record: dict[str, Any] = {
        "announcement_id": str(uuid.uuid4()),
        "model_name": model_name,
        "version": version,
        "action": action,
        "router_type": router_type,
        "bundle": bundle.record(),
        "signature": {
            "algorithm": str(signature["algorithm"]),
            "key_id": str(signature["key_id"]),
            "value": str(signature["value"]),
        },
        "metrics": {k: float(v) for k, v in metrics.items()},
        "previous_version": previous_version,
        "mlflow_run_id": mlflow_run_id,
        "mlflow_model_version": mlflow_model_version,
        "announced_by": announced_by,
        "announced_at": int(time.time() * 1000),
        "reason": reason,
    }
    return record


@dataclass(frozen=True, kw_only=True, eq=False)
class Announcer:
    """Publishes ``ModelAnnouncement`` records: the version every gateway must serve."""

    producer: Producer
    serde: AvroSerde
    topic: str
    announced_by: str
    timeout_s: float = 30.0

    def announce(self, **fields: Any) -> dict[str, Any]:
        """Produce one announcement (fields as ``announcement_record``'s), keyed by model name."""
        fields["announced_by"] = fields.get("announced_by") or self.announced_by
        record = announcement_record(**fields)
        _produce(
            self.producer,
            self.topic,
            record["model_name"].encode("utf-8"),
            self.serde.encode(record),
            timeout_s=self.timeout_s,
        )
        return record
