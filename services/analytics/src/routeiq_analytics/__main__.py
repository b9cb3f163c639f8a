"""Composition root: settings → registry serdes, Kafka clients → aggregator → loop → HTTP.

Exit codes: 2 invalid configuration (the reason is printed; librdkafka refusing a property
counts), 1 the consumer loop failed (a fatal Kafka error, the dead-letter schema not resolvable
within ``startup_timeout_s``; never a record, never an outage: those are waited out), 3 the
HTTP server could not start, 0 shutdown (SIGTERM). Running and stopping in order is
``runtime.AnalyticsService``'s.
"""

from __future__ import annotations

import logging
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.catalog import DEAD_LETTER, FEEDBACK, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.deadletters import DeadLetterSink
from routeiq.dependencies import Dependencies
from routeiq.service import http_server, run_service

from routeiq_analytics.api import create_app
from routeiq_analytics.clients import consumer_name, kafka_clients
from routeiq_analytics.config import AnalyticsSettings
from routeiq_analytics.consumer import AnalyticsConsumer, Sources
from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.metrics import AnalyticsMetrics
from routeiq_analytics.poison import PoisonPolicy
from routeiq_analytics.runtime import AnalyticsService


def build(settings: AnalyticsSettings) -> AnalyticsService:
    """Every client and component, wired; nothing is started."""
    resolver = RegistryResolver(SchemaRegistryClient(settings.registry.client_config()))
    aggregator = Aggregator.from_settings(settings)
    metrics = AnalyticsMetrics()
    metrics.watch(aggregator, settings.windows)
    dependencies = Dependencies(
        log=logging.getLogger("routeiq_analytics"), registry=metrics.registry
    )
    kafka = kafka_clients(settings, dependencies["kafka"])
    _ = dependencies["registry"]  # listed on /health/ready (and its gauge) from the start
    dead_letter_serde = AvroSerde.for_topic(
        DEAD_LETTER, settings.deadletter_topic, resolver=resolver
    )
    poison = PoisonPolicy(
        sink=DeadLetterSink(
            producer=kafka.producer,
            serde=dead_letter_serde,
            topic=settings.deadletter_topic,
            consumer=consumer_name(settings),
        ),
        kafka=dependencies["kafka"],
        aggregator=aggregator,
        metrics=metrics,
    )
    loop = AnalyticsConsumer(
        consumer=kafka.consumer,
        sources=Sources(
            decisions_topic=settings.decisions_topic,
            feedback_topic=settings.feedback_topic,
            decisions=AvroSerde.for_topic(
                ROUTER_DECISION, settings.decisions_topic, resolver=resolver
            ),
            feedback=AvroSerde.for_topic(FEEDBACK, settings.feedback_topic, resolver=resolver),
        ),
        aggregator=aggregator,
        poison=poison,
        recall_reader=kafka.recall_reader,
        metrics=metrics,
        dependencies=dependencies,
        rebuild_s=settings.retention_s if settings.rebuild_on_start else None,
        batch_size=settings.batch_size,
        poll_timeout_s=settings.poll_timeout_s,
    )
    app = create_app(
        aggregator=aggregator,
        readiness=loop,
        metrics=metrics,
        windows=settings.windows,
        retention_s=settings.retention_s,
        timeseries_points=settings.timeseries_points,
        refresh_s=settings.dashboard_refresh_s,
    )
    server = http_server(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return AnalyticsService(settings, server, loop, kafka.producer, dead_letter_serde)


def main() -> int:
    return run_service("routeiq-analytics", AnalyticsSettings.load, lambda s: build(s).run)


if __name__ == "__main__":
    sys.exit(main())
