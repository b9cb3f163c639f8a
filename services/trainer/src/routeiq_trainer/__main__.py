"""Composition root of the worker: settings → clients → pipeline → consumer loop + HTTP.

``python -m routeiq_trainer`` consumes ``routeiq.retrain.requests.v1`` in the consumer group
``ROUTEIQ_TRAINER_CONSUMER_GROUP`` and serves ``/health/live``, ``/health/ready`` and
``/metrics`` on ``ROUTEIQ_TRAINER_HOST:ROUTEIQ_TRAINER_HEALTH_PORT``.

Exit codes: 2 invalid configuration (including a missing signing key or ``device=cuda``
without CUDA), 1 a dependency failed (Kafka, S3, MLflow unusable, or a record could not be
dead-lettered), 0 clean shutdown on SIGTERM/SIGINT (after the request in progress).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import uvicorn
from routeiq.errors import ConfigError, RouteIQError
from routeiq.kafka import make_consumer

from routeiq_trainer.api import create_app
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.worker import RequestWorker
from routeiq_trainer.wiring import build_services, resolve_device

logger = logging.getLogger("routeiq_trainer")


def main() -> int:
    try:
        settings = TrainerSettings.load()
        settings.signer()
        device = resolve_device(settings)
    except ConfigError as exc:
        print(f"routeiq-trainer: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        services = build_services(settings)
        assert services.pipeline is not None
        consumer = make_consumer(
            settings.kafka,
            group_id=settings.consumer_group,
            client_id=settings.instance_id,
            overrides={"max.poll.interval.ms": settings.max_poll_interval_ms},
        )
    except ConfigError as exc:
        print(f"routeiq-trainer: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except RouteIQError as exc:
        print(f"routeiq-trainer: cannot start: {exc}", file=sys.stderr)
        return 1
    worker = RequestWorker(
        consumer=consumer,
        topic=settings.requests_topic,
        serde=services.request_serde(),
        pipeline=services.pipeline,
        dead_letters=services.dead_letters(),
        metrics=services.metrics,
        retry_attempts=settings.retry_attempts,
        retry_backoff_s=settings.retry_backoff_s,
        poll_timeout_s=settings.poll_timeout_s,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(state=worker.state, metrics=services.metrics, device=device),
            host=settings.host,
            port=settings.health_port,
            log_level="warning",
            access_log=False,
        )
    )
    http = threading.Thread(target=server.run, name="trainer-http", daemon=True)
    http.start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping after the current request", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
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


if __name__ == "__main__":
    sys.exit(main())
