"""Starting and stopping ``python -m routeiq_upstream`` processes on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import http_ok, wait_until

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_UPSTREAM_")}
    env.update({"ROUTEIQ_UPSTREAM_HOST": "127.0.0.1", "ROUTEIQ_UPSTREAM_PORT": str(port)})
    env.update({f"ROUTEIQ_UPSTREAM_{k.upper()}": v for k, v in settings.items()})
    with log_path.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "routeiq_upstream"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_ready(upstream: UpstreamProcess, timeout_s: float = 60.0) -> None:
    """Until the upstream has loaded its data; fail at once (with its log) if it exits."""

    def serving() -> bool:
        if upstream.process.poll() is not None:
            pytest.fail(f"upstream exited with {upstream.process.returncode}:\n{upstream.log()}")
        return http_ok(f"{upstream.url}/health/ready")

    try:
        wait_until(serving, timeout=timeout_s, what=f"the upstream at {upstream.url}")
    except TimeoutError as exc:
        pytest.fail(f"{exc}:\n{upstream.log()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
