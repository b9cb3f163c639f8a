"""Composition root: settings → Kafka topology check → S3 store → serdes → dead-letter sink →
Faust app → worker.

Exit codes (``routeiq.service.run_service``): 2 invalid configuration, 1 Kafka, registry or
S3 not usable at start (or the worker crashed), 0 clean shutdown (SIGTERM or SIGINT).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import httpx
import urllib3
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.serde import RegistryResolver
from routeiq.deadletters import DeadLetterSink, recall_reader
from routeiq.dependencies import Dependencies
from routeiq.kafka import make_admin, make_producer
from routeiq.service import Runner, run_service
from routeiq.storage import ArtifactStore, make_minio

from routeiq_labeler.api import register_pages
from routeiq_labeler.app import QuietWorker, build_serdes, faust_app
from routeiq_labeler.config import LabelerSettings
from routeiq_labeler.metrics import LabelerMetrics
from routeiq_labeler.poison import PoisonPolicy
from routeiq_labeler.sink import preload_arrow
from routeiq_labeler.topology import check_topology
from routeiq_labeler.worker import SERVICE, LabelerWorker, now_ms


def build(settings: LabelerSettings) -> Runner:
    """Check the topics, reach S3 and the registry, and assemble the Faust worker."""
    partitions = check_topology(make_admin(settings.kafka), settings)
    store = ArtifactStore(make_minio(settings.s3))
    store.ensure_bucket(settings.shards_bucket)
    registry = SchemaRegistryClient(settings.registry.client_config())
    serdes = build_serdes(settings, RegistryResolver(registry))
    preload_arrow()
    app = faust_app(settings, partitions=partitions)
    metrics = LabelerMetrics()
    dependencies = Dependencies(log=logging.getLogger("routeiq_labeler"), registry=metrics.registry)
    # Stable across restarts (the recall matches on it); the app id tells labelers apart.
    consumer = f"{SERVICE}/{settings.app_id}"
    # librdkafka's own log lines go through Python logging (and its repeat filter).
    quiet = {"logger": logging.getLogger("routeiq_labeler.librdkafka")}
    poison = PoisonPolicy(
        sink=DeadLetterSink(
            producer=make_producer(
                settings.kafka, client_id=f"{SERVICE}-deadletters", overrides=quiet
            ),
            serde=serdes.deadletter,
            topic=settings.deadletter_topic,
            consumer=consumer,
        ),
        kafka=dependencies["kafka"],
        metrics=metrics,
        make_reader=lambda: recall_reader(settings.kafka, consumer, quiet),
        clock_ms=now_ms,
    )
    worker = LabelerWorker(
        settings=settings,
        app=app,
        store=store,
        serdes=serdes,
        metrics=metrics,
        poison=poison,
        dependencies=dependencies,
    )
    register_pages(app, status=worker, metrics=metrics)

    def run() -> int:
        # What this consumer dead-lettered before, read before any record is: a replay
        # (a crash between a dead letter and the commit) writes no second one. Waits for Kafka.
        asyncio.run(poison.recall())
        # mode's Worker installs the SIGTERM/SIGINT handlers (graceful stop: offsets committed
        # after the changelog is flushed), configures logging, and exits 0, or 1 after a crash.
        QuietWorker(
            app, loglevel=settings.log_level, redirect_stdouts=False, quiet=True
        ).execute_from_commandline()
        return 0

    return run


def main() -> int:
    return run_service(
        SERVICE,
        LabelerSettings.load,
        build,
        # minio and the registry client raise their own errors for an unreachable endpoint.
        startup_errors=(urllib3.exceptions.HTTPError, httpx.HTTPError),
        configure_logs=False,
    )


if __name__ == "__main__":
    sys.exit(main())
