"""Running the service: the consumer loop on a thread beside the HTTP server, stopped in order.

The HTTP server starts at once (``/health/live`` answers, ``/health/ready`` is 503) while a
thread resolves the dead-letter schema, recalls the dead letters already written and runs the
consumer loop; a registry or Kafka outage is waited out (``/health/ready`` names it), a poison
record is dead-lettered, neither stops the process. On SIGTERM uvicorn drains first; only then
does the loop stop, the consumer leave its group and the dead letters flush.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import uvicorn
from confluent_kafka import Producer
from routeiq.contracts.serde import AvroSerde
from routeiq.dependencies import Dependency
from routeiq.errors import RegistryError, RouteIQError
from routeiq.service import serve_http

from routeiq_analytics.config import AnalyticsSettings
from routeiq_analytics.consumer import AnalyticsConsumer

log = logging.getLogger("routeiq_analytics")

# Exit code when the consumer loop failed (the HTTP server's own codes are serve_http's).
LOOP_FAILED = 1
# How long queued dead letters get to be acknowledged at shutdown.
FLUSH_TIMEOUT_S = 10.0


def resolve_schema(
    serde: AvroSerde, *, timeout_s: float, stop: threading.Event, registry: Dependency
) -> None:
    """Wait until ``serde``'s subject resolves (the registry may still be starting); the
    wait is ``registry``'s state (one WARNING, reminders), not a line per try."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _ = serde.schema_id
        except RegistryError as exc:
            if time.monotonic() >= deadline or stop.is_set():
                raise RegistryError(
                    f"{serde.subject} did not resolve within {timeout_s:.0f}s "
                    f"(register it with `routeiq schemas register`): {exc}"
                ) from exc
            registry.failed(f"waiting for {serde.subject}: {exc}")
            stop.wait(2.0)
            continue
        registry.recovered()
        return


@dataclass
class AnalyticsService:
    """The built service: nothing runs until ``run``."""

    settings: AnalyticsSettings
    server: uvicorn.Server
    loop: AnalyticsConsumer
    producer: Producer
    dead_letter_serde: AvroSerde

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT or a loop failure; the process's exit code."""
        s = self.settings
        log.info(
            "analytics on http://%s:%d: group %s reading %s and %s at %s",
            s.host,
            s.port,
            s.group_id,
            s.decisions_topic,
            s.feedback_topic,
            s.kafka.bootstrap_servers,
        )
        stop = threading.Event()
        failed = threading.Event()
        worker = threading.Thread(
            target=self._consume, args=(stop, failed), name="analytics-consumer", daemon=True
        )
        worker.start()

        # Runs once uvicorn has drained its requests: stop the loop, leave the group, then make
        # sure every queued dead letter reached the broker.
        def on_stop() -> None:
            stop.set()
            worker.join(timeout=s.poll_timeout_s + 30.0)
            self.loop.close()
            self.producer.flush(FLUSH_TIMEOUT_S)

        code = serve_http(self.server, on_stop=on_stop)
        return LOOP_FAILED if failed.is_set() else code

    def _consume(self, stop: threading.Event, failed: threading.Event) -> None:
        try:
            resolve_schema(
                self.dead_letter_serde,
                timeout_s=self.settings.startup_timeout_s,
                stop=stop,
                registry=self.loop.dependencies["registry"],
            )
            self.loop.run(stop)
        except RouteIQError as exc:
            log.error("consumer loop stopped: %s", exc)
            self.loop.failure = str(exc)
            failed.set()
        except Exception as exc:  # a bug must stop the service (restart), not freeze it
            log.exception("consumer loop crashed")
            self.loop.failure = f"{type(exc).__name__}: {exc}"
            failed.set()
        finally:
            if not stop.is_set():
                self.server.should_exit = True
