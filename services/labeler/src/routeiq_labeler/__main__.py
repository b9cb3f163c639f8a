"""Composition root: settings → Kafka topology check → S3 store → serdes → Faust app → worker.

Exit codes: 2 invalid configuration, 1 Kafka, registry or S3 not usable at start (or the
worker crashed), 0 clean shutdown (SIGTERM or SIGINT).
"""

from __future__ import annotations

import sys

import faust
import httpx
import urllib3
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.catalog import (
    DEAD_LETTER,
    FEEDBACK,
    RETRAIN_REQUEST,
    ROUTER_DECISION,
    Contract,
)
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.errors import ConfigError, RouteIQError
from routeiq.kafka import make_admin
from routeiq.storage import ArtifactStore, make_minio

from routeiq_labeler.api import register_pages
from routeiq_labeler.config import LabelerSettings
from routeiq_labeler.core.sink import preload_arrow
from routeiq_labeler.metrics import LabelerMetrics
from routeiq_labeler.topology import check_topology
from routeiq_labeler.worker import SERVICE, LabelerWorker, Serdes, faust_app


def build_serdes(settings: LabelerSettings, registry: SchemaRegistryClient) -> Serdes:
    """One serde per topic, subjects by TopicNameStrategy. The writers' schema ids are looked
    up now, so an unregistered dead-letter or retrain subject fails the start, not the first
    poison record."""
    resolver = RegistryResolver(registry)

    def serde(contract: Contract, topic: str) -> AvroSerde:
        return AvroSerde.for_contract(contract, subject=f"{topic}-value", resolver=resolver)

    serdes = Serdes(
        decisions=serde(ROUTER_DECISION, settings.decisions_topic),
        feedback=serde(FEEDBACK, settings.feedback_topic),
        deadletter=serde(DEAD_LETTER, settings.deadletter_topic),
        retrain=serde(RETRAIN_REQUEST, settings.retrain_topic),
    )
    for writer in (serdes.deadletter, serdes.retrain):
        _ = writer.schema_id
    return serdes


def main() -> int:
    try:
        settings = LabelerSettings.load()
    except ConfigError as exc:
        print(f"{SERVICE}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        partitions = check_topology(make_admin(settings.kafka), settings)
        store = ArtifactStore(make_minio(settings.s3))
        store.ensure_bucket(settings.shards_bucket)
        serdes = build_serdes(settings, SchemaRegistryClient(settings.registry.client_config()))
    except (RouteIQError, urllib3.exceptions.HTTPError, httpx.HTTPError) as exc:
        # minio and the registry client raise their own errors for an unreachable endpoint.
        print(f"{SERVICE}: cannot start: {exc}", file=sys.stderr)
        return 1
    preload_arrow()
    app = faust_app(settings, partitions=partitions)
    metrics = LabelerMetrics()
    worker = LabelerWorker(settings=settings, app=app, store=store, serdes=serdes, metrics=metrics)
    register_pages(app, status=worker, registry=metrics.registry)
    # mode's Worker installs the SIGTERM/SIGINT handlers (graceful stop: offsets committed
    # after the changelog is flushed) and exits 0, or 1 after a crash.
    faust.Worker(
        app, loglevel=settings.log_level, redirect_stdouts=False, quiet=True
    ).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
