"""Composition root: settings -> upstream (``wiring``) -> HTTP app -> uvicorn.

Everything is loaded before the port opens, so ``/health/ready`` answers 200 as soon as the
server listens. Exit codes: 2 invalid configuration (unknown or invalid settings, a dataset
that does not load, a model in a mapping that no dataset serves, cl100k_base required but not
available), 3 the server could not start (uvicorn's code, e.g. the port is taken), 0 clean
shutdown (on SIGTERM/SIGINT uvicorn finishes in-flight requests first).
"""

from __future__ import annotations

import logging
import sys
import time

from routeiq.service import Runner, http_server, run_service, serve_http

from routeiq_upstream.api import UpstreamMetrics, create_app
from routeiq_upstream.config import UpstreamSettings
from routeiq_upstream.wiring import build_upstream

logger = logging.getLogger("routeiq_upstream")


def build(settings: UpstreamSettings) -> Runner:
    """The upstream and its server (ConfigError when the settings cannot be served)."""
    started = time.perf_counter()
    upstream = build_upstream(settings)
    app = create_app(
        upstream,
        metrics=UpstreamMetrics(),
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        max_body_bytes=settings.max_body_bytes,
    )
    logger.info(
        "offline upstream on http://%s:%d/v1: %d prompts (%s), %d models (%s), tokenizer %s, "
        "built in %.1fs",
        settings.host,
        settings.port,
        upstream.describe()["prompts"],
        ", ".join(f"{d.name} {d.prompts}" for d in upstream.index.datasets),
        len(upstream.catalog.models),
        ", ".join(upstream.catalog.models),
        upstream.counter.name,
        time.perf_counter() - started,
    )
    server = http_server(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return lambda: serve_http(server)


def main() -> int:
    return run_service("routeiq-upstream", UpstreamSettings.load, build)


if __name__ == "__main__":
    sys.exit(main())
