"""Composition root: settings → registry serdes, Kafka clients → aggregator → loop → HTTP.

The HTTP server starts at once (``/health/live`` answers, ``/health/ready`` is 503) while a
thread resolves the dead-letter schema and runs the consumer loop; ready means partitions are
assigned and caught up. Exit codes: 2 invalid configuration (the reason is printed), 1 the
consumer loop failed (Kafka fatal error, dead letters not acknowledged, registry not usable
within ``startup_timeout_s``), 3 the HTTP server could not start, 0 shutdown (SIGTERM).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass

import uvicorn
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.catalog import DEAD_LETTER, FEEDBACK, ROUTER_DECISION, Contract
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.errors import ConfigError, RegistryError, RouteIQError, TransportError
from routeiq.kafka import make_consumer, make_producer

from routeiq_analytics.api import create_app
from routeiq_analytics.config import AnalyticsSettings
from routeiq_analytics.consumer import AnalyticsConsumer, Sources
from routeiq_analytics.core.aggregator import Aggregator
from routeiq_analytics.deadletter import DeadLetterSink
from routeiq_analytics.metrics import AnalyticsMetrics

log = logging.getLogger("routeiq_analytics")


@dataclass
class Service:
    server: uvicorn.Server
    loop: AnalyticsConsumer
    producer: Producer
    dead_letter_serde: AvroSerde


def build(settings: AnalyticsSettings) -> Service:
    """Every client and component, wired; nothing is started."""
    resolver = RegistryResolver(SchemaRegistryClient(settings.registry.client_config()))

    def serde(contract: Contract, topic: str) -> AvroSerde:
        return AvroSerde.for_contract(contract, subject=f"{topic}-value", resolver=resolver)

    aggregator = Aggregator(
        bucket_s=settings.bucket,
        retention_s=settings.retention_s,
        prices=settings.price_table(),
        strong_model=settings.strong_model,
        weak_model=settings.weak_model,
        candidates=settings.candidates or None,
        best_model_min_graded=settings.best_model_min_graded,
        latency_sample_size=settings.latency_sample_size,
        max_join_decisions=settings.max_join_decisions,
        max_pending_feedback=settings.max_pending_feedback,
        feedback_wait_s=settings.feedback_wait,
        max_labels=settings.max_labels,
    )
    metrics = AnalyticsMetrics()
    metrics.watch(aggregator, settings.windows)
    consumer = make_consumer(
        settings.kafka,
        group_id=settings.group_id,
        client_id=settings.client_id,
        # EOF events tell the loop it has caught up with a partition (readiness).
        overrides={"enable.partition.eof": True},
    )
    # A dead letter is one small record the loop waits for before committing: no lingering.
    producer = make_producer(
        settings.kafka, client_id=f"{settings.client_id}-deadletter", overrides={"linger.ms": 0}
    )
    dead_letter_serde = serde(DEAD_LETTER, settings.deadletter_topic)
    loop = AnalyticsConsumer(
        consumer=consumer,
        sources=Sources(
            decisions_topic=settings.decisions_topic,
            feedback_topic=settings.feedback_topic,
            decisions=serde(ROUTER_DECISION, settings.decisions_topic),
            feedback=serde(FEEDBACK, settings.feedback_topic),
        ),
        aggregator=aggregator,
        dead_letters=DeadLetterSink(
            producer=producer,
            serde=dead_letter_serde,
            topic=settings.deadletter_topic,
            consumer=f"routeiq-analytics/{settings.group_id}",
        ),
        metrics=metrics,
        rebuild_s=settings.retention_s if settings.rebuild_on_start else None,
        batch_size=settings.batch_size,
        poll_timeout_s=settings.poll_timeout_s,
    )
    app = create_app(
        aggregator=aggregator,
        readiness=loop,
        metrics_registry=metrics.registry,
        windows=settings.windows,
        retention_s=settings.retention_s,
        timeseries_points=settings.timeseries_points,
        refresh_s=settings.dashboard_refresh_s,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
        )
    )
    return Service(server, loop, producer, dead_letter_serde)


def resolve_schema(serde: AvroSerde, *, timeout_s: float, stop: threading.Event) -> None:
    """Wait until ``serde``'s subject resolves (the registry may still be starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _ = serde.schema_id
            return
        except RegistryError as exc:
            if time.monotonic() >= deadline or stop.is_set():
                raise RegistryError(
                    f"{serde.subject} did not resolve within {timeout_s:.0f}s "
                    f"(register it with `routeiq schemas register`): {exc}"
                ) from exc
            log.warning("waiting for %s in the schema registry: %s", serde.subject, exc)
            stop.wait(2.0)


def main() -> int:
    try:
        settings = AnalyticsSettings.load()
    except ConfigError as exc:
        print(f"routeiq-analytics: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The registry client logs every HTTP request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        service = build(settings)
    except TransportError as exc:
        # librdkafka refuses unknown or invalid properties (ROUTEIQ_ANALYTICS_KAFKA__EXTRA).
        print(f"routeiq-analytics: invalid Kafka configuration: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    failed = threading.Event()

    def work() -> None:
        try:
            resolve_schema(
                service.dead_letter_serde, timeout_s=settings.startup_timeout_s, stop=stop
            )
            service.loop.run(stop)
        except RouteIQError as exc:
            log.error("consumer loop stopped: %s", exc)
            service.loop.failure = str(exc)
            failed.set()
        except Exception as exc:  # a bug must stop the service (restart), not freeze it
            log.exception("consumer loop crashed")
            service.loop.failure = f"{type(exc).__name__}: {exc}"
            failed.set()
        finally:
            if not stop.is_set():
                service.server.should_exit = True

    log.info(
        "analytics on http://%s:%d: group %s reading %s and %s at %s",
        settings.host,
        settings.port,
        settings.group_id,
        settings.decisions_topic,
        settings.feedback_topic,
        settings.kafka.bootstrap_servers,
    )
    worker = threading.Thread(target=work, name="analytics-consumer", daemon=True)
    worker.start()
    # uvicorn re-raises the signal that stopped it once it has shut down. Handled here, it no
    # longer kills the process before the consumer leaves its group and dead letters flush.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    try:
        service.server.run()
    finally:
        stop.set()
        worker.join(timeout=settings.poll_timeout_s + 30.0)
        service.loop.close()
        service.producer.flush(10.0)
    if failed.is_set():
        return 1
    return 0 if service.server.started else 3


if __name__ == "__main__":
    sys.exit(main())
