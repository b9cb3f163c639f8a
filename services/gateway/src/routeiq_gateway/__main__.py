"""Composition root: settings + model file → routing engine, upstream, telemetry, model sync → app.

Exit codes (``routeiq.service.run_service``): 2 invalid configuration (the reason is printed),
1 a dependency could not be set up, 3 the server never started, 0 clean shutdown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# litellm fetches a model cost map over the network at import time unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# One decision's matrix-vector product is too small to split across threads, and BLAS
# worker threads spinning beside the event loop, Kafka's and model sync's threads cost more
# than they give (measured: bench/gateway.py). Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.serde import PersistentResolver, RegistryResolver
from routeiq.routing.strategies import BundleHolder
from routeiq.service import Runner, http_server, run_service, serve_http
from routeiq.telemetry import configure_tracing

from routeiq_gateway.config import GatewaySettings, load_model_file
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.sync.wiring import build_control, build_sync
from routeiq_gateway.upstream import LITELLM_LOGGERS
from routeiq_gateway.wiring import (
    build_app,
    build_engine,
    build_features,
    build_gateway,
    build_publisher,
    log,
)


def build(settings: GatewaySettings) -> Runner:
    provider = configure_tracing(settings.telemetry, service_name="routeiq-gateway")
    model_file = load_model_file(settings.config_path)
    holder = BundleHolder()
    engine = build_engine(model_file, holder)
    metrics = GatewayMetrics()
    features = build_features(settings, model_file, engine)
    registry = SchemaRegistryClient(settings.registry.client_config())
    # Schema ids cached on disk: a gateway restarted while the registry is down still encodes.
    resolver = PersistentResolver(
        RegistryResolver(registry), settings.spool_dir / "schema-ids.json"
    )
    publisher = build_publisher(settings, metrics) if settings.telemetry_enabled else None
    gateway = build_gateway(
        settings,
        model_file=model_file,
        engine=engine,
        features=features,
        metrics=metrics,
        publisher=publisher,
        resolver=resolver,
    )
    sync = None
    router_name = model_file.routeiq.router_name
    if settings.sync_enabled and router_name:
        assert features is not None  # a followed router needs features
        sync = build_sync(
            settings,
            router_name=router_name,
            holder=holder,
            features=features,
            metrics=metrics,
            resolver=resolver,
        )
    control = (
        build_control(settings, model_file, engine=engine, metrics=metrics, resolver=resolver)
        if settings.control_enabled
        else None
    )
    app = build_app(
        settings, gateway, model_file=model_file, metrics=metrics, sync=sync, control=control
    )
    server = http_server(app, host=settings.host, port=settings.port)

    def stop() -> None:
        if control is not None:
            control.stop()
        if sync is not None:
            sync.stop()
        if publisher is not None:
            publisher.close()  # flushes what Kafka has not acknowledged to the spool
        provider.shutdown()

    def run() -> int:
        if publisher is not None:
            publisher.start()
        if sync is not None:
            sync.start()
        if control is not None:
            control.start(wait_s=settings.control_start_wait_s)
        where = f"http://{settings.host}:{settings.port}"
        model_path = Path(settings.config_path).resolve()
        log.info("gateway %s on %s (model file %s)", settings.replica_id, where, model_path)
        return serve_http(server, on_stop=stop)

    return run


def main() -> int:
    return run_service(
        "routeiq-gateway", GatewaySettings.load, build, quiet_loggers=LITELLM_LOGGERS
    )


if __name__ == "__main__":
    sys.exit(main())
