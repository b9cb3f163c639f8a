"""Composition root of the worker: settings → clients → pipeline → consumer loop + HTTP.

``python -m routeiq_trainer`` consumes ``routeiq.retrain.requests.v1`` in the consumer group
``ROUTEIQ_TRAINER_CONSUMER_GROUP`` and serves ``/health/live``, ``/health/ready`` and
``/metrics`` on ``ROUTEIQ_TRAINER_HOST:ROUTEIQ_TRAINER_HEALTH_PORT``.

Exit codes (``routeiq.service.run_service``): 2 invalid configuration (including a missing
signing key or ``device=cuda`` without CUDA), 1 a dependency unusable at start (S3, MLflow,
the registry) or a fatal Kafka client error, 0 clean shutdown on SIGTERM/SIGINT (after the
request in progress). A dependency lost while running never stops the worker: it waits, says
so once in the log and on ``/health/ready``, and goes on when it is back.
"""

from __future__ import annotations

import logging
import sys

from routeiq.errors import RouteIQError
from routeiq.service import (
    Runner,
    http_server,
    run_service,
    serve_in_background,
    stop_on_signals,
)

from routeiq_trainer.api import create_app
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.wiring import build_services, resolve_device

logger = logging.getLogger("routeiq_trainer")


def build(settings: TrainerSettings) -> Runner:
    """The worker and its health server, ready to run (nothing consumed yet)."""
    settings.signer()  # refuses to start without a signing key
    device = resolve_device(settings)
    services = build_services(settings)
    worker = services.worker(client_id=settings.instance_id)
    server = http_server(
        create_app(
            state=worker.state,
            metrics=services.metrics,
            dependencies=services.dependencies,
            device=device,
        ),
        host=settings.host,
        port=settings.health_port,
    )

    def run() -> int:
        http = serve_in_background(server, name="trainer-http")
        stop = stop_on_signals(logger, "after the current request")
        logger.info(
            "trainer %s: device %s, group %s, health on http://%s:%d",
            settings.instance_id,
            device,
            settings.consumer_group,
            settings.host,
            settings.health_port,
        )
        code = 0
        try:
            worker.run(stop)
        except RouteIQError as exc:
            worker.state.error = str(exc)
            logger.error("worker stopped: %s", exc)
            code = 1
        except Exception as exc:
            worker.state.error = repr(exc)
            logger.exception("worker crashed")
            code = 1
        finally:
            server.should_exit = True
            services.close()
            http.join(timeout=5)
        return code

    return run


def main() -> int:
    return run_service("routeiq-trainer", TrainerSettings.load, build)


if __name__ == "__main__":
    sys.exit(main())
