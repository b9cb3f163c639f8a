"""Starting and stopping ``python -m routeiq_upstream`` processes on free ports."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.processes import service_env, spawn_module, stop_process, wait_serving

API_KEY = "test-upstream-key"


@dataclass
class UpstreamProcess:
    """One upstream process and how to reach it."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        """What OpenAI clients and LiteLLM take as ``base_url`` / ``api_base``."""
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn(log_path: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    env = service_env("ROUTEIQ_UPSTREAM_", **{"host": "127.0.0.1", "port": str(port), **settings})
    return spawn_module("routeiq_upstream", env, log_path)


def wait_ready(upstream: UpstreamProcess, timeout_s: float = 60.0) -> None:
    """Until the upstream has loaded its data; fail at once (with its log) if it exits."""
    wait_serving(
        upstream.process, upstream.url, upstream.log_path, name="upstream", timeout=timeout_s
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    stop_process(process, timeout=15, kill_timeout=5)
