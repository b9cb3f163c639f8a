"""What every component is made of: the ``Component`` record, health probes and the helpers
that turn settings into command lines and environments."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from routeiq.errors import ConfigError

from routeiq_cli.stack.settings import StackSettings

Probe = Callable[[], str | None]  # None when healthy, else why not


@dataclass(frozen=True)
class Component:
    """One supervised process of the local stack."""

    name: str
    title: str
    command: list[str]
    ports: list[int]
    health: Probe
    endpoint: str
    environment: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None  # one-time setup before the first start
    stop_wait_s: int = 30
    # "infra" components start first; "service" ones after topics and schemas are applied.
    phase: str = "infra"


def venv_bin(name: str) -> str:
    """A console script installed next to this interpreter."""
    return str(Path(sys.executable).parent / name)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_taken(host: str, port: int) -> bool:
    """True when a server could not bind ``host:port`` now: something listens there, or a
    connection holds it as its client port (which a connect probe does not see). Binds with
    SO_REUSEADDR, as the stack's servers do, so the TIME_WAIT a stopped component leaves
    behind does not count. ``ConfigError`` when ``host`` is not an address of this machine."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve the stack's host {host!r}: {exc}") from exc
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
                # Not a busy port but an address this host cannot bind at all.
                raise ConfigError(f"cannot bind {host}:{port}: {exc}") from exc
    # Where SO_REUSEADDR lets a specific address share a wildcard listener's port (the BSDs,
    # macOS), only a connection attempt sees that listener.
    return port_open(host, port)


def http_health(url: str) -> Probe:
    """Healthy when ``GET url`` answers 200."""

    def probe() -> str | None:
        try:
            response = httpx.get(url, timeout=2.0)
        except httpx.HTTPError as exc:
            return f"GET {url}: {exc.__class__.__name__}"
        return None if response.status_code == 200 else f"GET {url}: HTTP {response.status_code}"

    return probe


def prepare_dir(path: Path) -> Callable[[], None]:
    return lambda: path.mkdir(parents=True, exist_ok=True)


def flags(options: Mapping[str, str | int | bool], *, dash: str, joined: bool) -> list[str]:
    """Command-line options from a mapping: ``True`` is a bare flag; a value follows its
    option as ``-name=value`` (``joined``) or as the next argument (``--name value``)."""
    args: list[str] = []
    for name, value in options.items():
        if value is True:
            args.append(f"{dash}{name}")
        elif joined:
            args.append(f"{dash}{name}={value}")
        else:
            args += [f"{dash}{name}", str(value)]
    return args


@dataclass(frozen=True)
class ServiceSpec:
    """Who a RouteIQ process is: its component name and title, its module (run as
    ``python -m``), the prefix of its settings, and the two settings that say where it
    listens (host, port)."""

    name: str
    title: str
    module: str
    prefix: str
    listen: tuple[str, str] = ("HOST", "PORT")


def clients_env(prefix: str, settings: StackSettings, groups: Iterable[str]) -> dict[str, str]:
    """How a service reaches the stack's ``kafka``, ``registry``, ``s3`` and ``redis`` (its
    settings' groups, only those named: a service's settings refuse variables it does not
    read)."""
    host = settings.host
    by_group = {
        "kafka": {f"{prefix}KAFKA__BOOTSTRAP_SERVERS": f"{host}:{settings.kafka_port}"},
        "registry": {f"{prefix}REGISTRY__URL": f"http://{host}:{settings.registry_port}"},
        "s3": {
            f"{prefix}S3__ENDPOINT": f"{host}:{settings.s3_port}",
            f"{prefix}S3__ACCESS_KEY": settings.s3_access_key,
            f"{prefix}S3__SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        },
        "redis": {f"{prefix}REDIS__URL": f"redis://{host}:{settings.redis_port}/0"},
    }
    return {k: v for group in groups for k, v in by_group[group].items()}


def python_service(
    settings: StackSettings,
    spec: ServiceSpec,
    port: int,
    *,
    clients: Iterable[str] = (),
    environment: Mapping[str, str],
    endpoint_path: str = "",
    prepare: Callable[[], None] | None = None,
    phase: str = "service",
) -> Component:
    """``spec``'s process listening on the stack's host and ``port``, reaching the stack's
    ``clients``, with an HTTP readiness probe; ``environment`` adds its own settings."""
    host_var, port_var = (spec.prefix + var for var in spec.listen)
    url = f"http://{settings.host}:{port}"
    return Component(
        name=spec.name,
        title=spec.title,
        command=[sys.executable, "-m", spec.module],
        environment={
            host_var: settings.host,
            port_var: str(port),
            **clients_env(spec.prefix, settings, clients),
            **environment,
        },
        ports=[port],
        health=http_health(f"{url}/health/ready"),
        endpoint=url + endpoint_path,
        prepare=prepare,
        phase=phase,
    )
