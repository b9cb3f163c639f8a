"""The offline upstream as a real process (``python -m routeiq_upstream``) on a free port.

The upstream needs none of the stack (no Kafka, S3, ...): only the benchmark files in data/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from integration.upstream.helpers import API_KEY, UpstreamProcess, spawn, stop, wait_ready
from support.processes import free_port


@pytest.fixture(scope="module")
def start_upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., UpstreamProcess]]:
    """``start_upstream(**settings)``: a ready upstream on a free port (settings as
    ``ROUTEIQ_UPSTREAM_<NAME>``); every process is stopped at the end of the module."""
    started: list[UpstreamProcess] = []
    folder = tmp_path_factory.mktemp("upstream")

    def start(**settings: str) -> UpstreamProcess:
        port = free_port()
        log_path = folder / f"upstream-{len(started)}.log"
        process = spawn(log_path, port, **settings)
        upstream = UpstreamProcess(f"http://127.0.0.1:{port}", port, process, log_path)
        started.append(upstream)
        wait_ready(upstream)
        return upstream

    yield start
    for upstream in started:
        stop(upstream.process)


@pytest.fixture(scope="module")
def upstream(start_upstream: Callable[..., UpstreamProcess]) -> UpstreamProcess:
    """The default configuration (all four datasets), behind an API key."""
    return start_upstream(api_key=API_KEY)
