"""Run RouteIQ services (and a private Kafka broker) as real processes from tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest

# Tests and benchmarks import free_port from here; the picker lives in support.ports.
from support.ports import free_port


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def service_env(prefix: str, **settings: str) -> dict[str, str]:
    """This process's environment without any ``prefix`` variable, plus ``settings`` under it
    (``kafka__bootstrap_servers`` -> ``<prefix>KAFKA__BOOTSTRAP_SERVERS``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    env.update({f"{prefix}{k.upper()}": v for k, v in settings.items()})
    return env


def run_module(
    module: str, env: Mapping[str, str], *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m <module>`` to its exit, output captured: how tests see a refusal at start."""
    return subprocess.run(
        [sys.executable, "-m", module],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_module(module: str, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m <module>`` in the background, its stdout and stderr into ``log_path``."""
    with log_path.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )


def wait_serving(
    process: subprocess.Popen[bytes], url: str, log_path: Path, *, name: str, timeout: float
) -> None:
    """Until ``url``'s ``/health/ready`` answers 200; fail the test at once, with the process's
    log, if it exits first or never gets ready."""

    def log() -> str:
        return log_path.read_text(errors="replace")

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log()}")
        return http_ok(f"{url}/health/ready")

    try:
        wait_until(ready, timeout=timeout, what=f"the {name} at {url}")
    except TimeoutError as exc:
        pytest.fail(f"{exc}:\n{log()}")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float, kill_timeout: float) -> None:
    """SIGTERM and wait; SIGKILL when it does not stop within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=kill_timeout)


class ServiceProcess:
    """``python -m <module>`` with an environment, its output in a log file."""

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        log: Path,
        *,
        health_url: str | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.module = module
        self.env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.log = log
        self.health_url = health_url
        self.command = command or [sys.executable, "-m", module]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 120.0) -> ServiceProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.health_url:
            try:
                wait_until(
                    lambda: self.alive() and http_ok(self.health_url or ""),
                    timeout=timeout,
                    what=f"{self.module} at {self.health_url}",
                )
            except TimeoutError as exc:
                self.stop()
                raise RuntimeError(f"{exc}\n--- {self.log} ---\n{self.tail()}") from exc
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        if not self.log.is_file():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, *, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, no clean-up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class PrivateKafka:
    """A single-node Apache Kafka (KRaft) of its own, for tests that stop and start a broker
    without disturbing the shared stack. Uses the stack's jars and configuration code."""

    def __init__(self, state_dir: Path) -> None:
        from routeiq_cli.stack.components import components, install_kafka
        from routeiq_cli.stack.settings import StackSettings

        self.port = free_port()
        controller = free_port()
        self.settings = StackSettings.load(
            {
                "ROUTEIQ_STACK_STATE_DIR": str(state_dir),
                "ROUTEIQ_STACK_KAFKA_PORT": str(self.port),
                "ROUTEIQ_STACK_KAFKA_CONTROLLER_PORT": str(controller),
                "ROUTEIQ_STACK_KAFKA_HEAP": "384m",
            }
        )
        install_kafka(self.settings)
        self.component = next(c for c in components(self.settings) if c.name == "kafka")
        self.process: ServiceProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.component.prepare is not None
        self.component.prepare()
        self.process = ServiceProcess(
            "kafka", {}, self.settings.state / "kafka.log", command=self.component.command
        )
        self.process.start()
        wait_until(lambda: self.component.health() is None, timeout=90, what="private Kafka")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=60)
