"""Analytics' Kafka clients, built so that an outage is state, not a flood of log lines.

librdkafka reports client-level errors (a broker unreachable, all brokers down) through
``error_cb``, served on poll/flush and never returned by ``consume``; without one it writes
them to stderr itself. Here they become the ``kafka`` dependency's state (one WARNING at loss,
reminders, one INFO when back: ``routeiq.dependencies``), and librdkafka's own log lines go
through Python logging, where the service's ``RepeatFilter`` folds repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from routeiq.deadletters import recall_reader
from routeiq.dependencies import Dependency
from routeiq.errors import ConfigError, TransportError
from routeiq.kafka import make_consumer, make_producer

from routeiq_analytics.config import AnalyticsSettings

log = logging.getLogger(__name__)

# librdkafka errors that mean Kafka as a whole is out of reach. A single ``_TRANSPORT`` is not:
# librdkafka reports every closed connection (an idle one the broker dropped, one broker of
# several) and reconnects on its own.
KAFKA_LOST = frozenset(
    {KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._RESOLVE}
)


def kafka_error_handler(kafka: Dependency) -> Callable[[KafkaError], None]:
    """An ``error_cb``: Kafka lost (or any error while it is lost) → ``kafka.failed``."""

    def on_error(error: KafkaError) -> None:
        if error.fatal() or error.code() in KAFKA_LOST or not kafka.up:
            kafka.failed(f"{error.name()}: {error.str()}")
        else:
            log.debug("Kafka client error (librdkafka reconnects): %s", error)

    return on_error


def consumer_name(settings: AnalyticsSettings) -> str:
    """The name on this consumer's dead letters: stable across restarts (``recall`` matches
    it), one per consumer group."""
    return f"routeiq-analytics/{settings.group_id}"


@dataclass(frozen=True, kw_only=True)
class KafkaClients:
    """The group consumer, the dead-letter producer, and how to build a recall reader."""

    consumer: Consumer
    producer: Producer
    recall_reader: Callable[[], Consumer]


def kafka_clients(settings: AnalyticsSettings, kafka: Dependency) -> KafkaClients:
    """Build the clients; ``ConfigError`` when librdkafka refuses a property."""
    quiet: dict[str, Any] = {
        "error_cb": kafka_error_handler(kafka),
        "logger": logging.getLogger("routeiq_analytics.librdkafka"),
    }

    def reader() -> Consumer:
        return recall_reader(settings.kafka, consumer_name(settings), quiet)

    try:
        # EOF events tell the loop it has caught up with a partition (readiness).
        consumer = make_consumer(
            settings.kafka,
            group_id=settings.group_id,
            client_id=settings.client_id,
            overrides={"enable.partition.eof": True, **quiet},
        )
        # A dead letter is one small record the loop waits for before committing: no linger.
        producer = make_producer(
            settings.kafka,
            client_id=f"{settings.client_id}-deadletter",
            overrides={"linger.ms": 0, **quiet},
        )
    except TransportError as exc:
        # librdkafka refuses unknown or invalid properties (ROUTEIQ_ANALYTICS_KAFKA__EXTRA).
        raise ConfigError(f"invalid Kafka configuration: {exc}") from exc
    return KafkaClients(consumer=consumer, producer=producer, recall_reader=reader)
