"""Composition root: settings -> Kafka clients -> log -> registry -> HTTP app -> uvicorn.

The HTTP server starts at once (``/health/live`` answers, ``/health/ready`` says 503) while a
thread replays the log; the registry is ready when the replay reaches the end of the topic.
Exit codes: 2 invalid configuration, 1 Kafka not usable within ``startup_timeout_s``, 3 the
HTTP server could not start (uvicorn's code, e.g. port in use), 0 clean shutdown (SIGTERM).
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid

from routeiq.dependencies import Dependency
from routeiq.errors import ConfigError, RouteIQError, TransportError
from routeiq.kafka import make_admin, make_consumer, make_producer
from routeiq.service import Runner, http_server, run_service, serve_http

from routeiq_schema_registry.api import create_app
from routeiq_schema_registry.config import RegistryServiceSettings
from routeiq_schema_registry.core import SchemaRegistry
from routeiq_schema_registry.kafka_log import KafkaSchemaLog

logger = logging.getLogger("routeiq_schema_registry")

CLIENT_ID = "routeiq-schema-registry"


def build_log(settings: RegistryServiceSettings) -> KafkaSchemaLog:
    """The Kafka clients and the log on ``settings.topic``."""
    try:
        # One small record per write, and the caller waits for it: do not linger.
        producer = make_producer(settings.kafka, client_id=CLIENT_ID, overrides={"linger.ms": 0})
        consumer = make_consumer(
            settings.kafka,
            # The partition is assigned directly, nothing is committed: the group is never
            # used, but librdkafka wants one. A unique id keeps registries from sharing state.
            group_id=f"{CLIENT_ID}-{uuid.uuid4().hex[:12]}",
            client_id=CLIENT_ID,
            overrides={"enable.partition.eof": True},
        )
        admin = make_admin(settings.kafka)
    except TransportError as exc:
        # librdkafka refuses unknown or invalid properties (ROUTEIQ_REGISTRY_KAFKA__EXTRA).
        raise ConfigError(f"invalid Kafka configuration: {exc}") from exc
    return KafkaSchemaLog(
        topic=settings.topic,
        producer=producer,
        consumer=consumer,
        admin=admin,
        replication_factor=settings.topic_replication_factor,
    )


def build(settings: RegistryServiceSettings) -> Runner:
    """The registry and its server; running them replays the log while the server listens."""
    registry = SchemaRegistry(
        log=build_log(settings),
        default_compatibility=settings.default_compatibility,
        write_timeout_s=settings.write_timeout_s,
        log_health=Dependency(name="kafka", log=logger),
    )
    server = http_server(
        create_app(registry),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )
    failed = threading.Event()

    def replay() -> None:
        try:
            registry.start(timeout_s=settings.startup_timeout_s)
        except RouteIQError as exc:
            logger.error(
                "cannot replay %s from %s within %.0fs: %s",
                settings.topic,
                settings.kafka.bootstrap_servers,
                settings.startup_timeout_s,
                exc,
            )
            failed.set()
            server.should_exit = True
            return
        # Then keep asking Kafka, so /health/ready shows it lost (and back) between writes.
        registry.watch()

    def run() -> int:
        logger.info(
            "schema registry on http://%s:%d, log %s at %s",
            settings.host,
            settings.port,
            settings.topic,
            settings.kafka.bootstrap_servers,
        )
        threading.Thread(target=replay, name="registry-replay", daemon=True).start()
        code = serve_http(server, on_stop=registry.close)
        return 1 if failed.is_set() else code

    return run


def main() -> int:
    return run_service("routeiq-schema-registry", RegistryServiceSettings.load, build)


if __name__ == "__main__":
    sys.exit(main())
