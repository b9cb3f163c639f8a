"""Starting and stopping ``python -m routeiq_upstream`` processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if upstream.process.poll() is not None:
            pytest.fail(f"upstream exited with {upstream.process.returncode}:\n{upstream.log()}")
        try:
            if httpx.get(f"{upstream.url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"upstream not ready within {timeout_s}s:\n{upstream.log()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
