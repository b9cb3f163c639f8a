"""Composition root: settings → Kafka topology check → S3 store → serdes → Faust app → worker.

Exit codes (``routeiq.service.run_service``): 2 invalid configuration, 1 Kafka, registry or
S3 not usable at start (or the worker crashed), 0 clean shutdown (SIGTERM or SIGINT).
"""

from __future__ import annotations

import sys

import faust
import httpx
import urllib3
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.serde import RegistryResolver
from routeiq.kafka import make_admin
from routeiq.service import Runner, run_service
from routeiq.storage import ArtifactStore, make_minio

from routeiq_labeler.api import register_pages
from routeiq_labeler.app import build_serdes, faust_app
from routeiq_labeler.config import LabelerSettings
from routeiq_labeler.metrics import LabelerMetrics
from routeiq_labeler.sink import preload_arrow
from routeiq_labeler.topology import check_topology
from routeiq_labeler.worker import SERVICE, LabelerWorker


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
    worker = LabelerWorker(settings=settings, app=app, store=store, serdes=serdes, metrics=metrics)
    register_pages(app, status=worker, metrics=metrics)

    def run() -> int:
        # mode's Worker installs the SIGTERM/SIGINT handlers (graceful stop: offsets committed
        # after the changelog is flushed), configures logging, and exits 0, or 1 after a crash.
        faust.Worker(
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
