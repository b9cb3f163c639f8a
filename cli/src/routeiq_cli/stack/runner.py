"""`make up` / `make down` / `make status` / `make clean` for the local stack.

``up`` is idempotent: a component that is already running and healthy costs one probe, topics
and schemas are applied idempotently, so a second ``up`` is a fast no-op.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.topics import TOPICS
from routeiq.errors import RouteIQError
from routeiq.kafka import apply_topics, broker_version, make_admin
from routeiq.storage import ArtifactStore, make_minio

from routeiq_cli.schemas import register_all
from routeiq_cli.stack.components import Component, components, install_kafka, port_open
from routeiq_cli.stack.components.base import port_taken
from routeiq_cli.stack.settings import StackSettings
from routeiq_cli.stack.supervisor import Supervisor, SupervisorError

Echo = Callable[[str], None]


class StackError(RouteIQError):
    """A component failed to start or pass its health check."""


@dataclass
class StepTimer:
    echo: Echo

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, str]]:
        """Time a step; the body may set ``result["status"]`` to say what happened."""
        result = {"status": "ok"}
        start = time.monotonic()
        try:
            yield result
        except Exception:
            self.echo(f"  ✗ {name:<22} failed after {time.monotonic() - start:5.1f}s")
            raise
        self.echo(f"  ✓ {name:<22} {result['status']:<34} {time.monotonic() - start:5.1f}s")


def _wait_healthy(sup: Supervisor, component: Component, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    reason = "not checked"
    while time.monotonic() < deadline:
        state = sup.state(component.name)
        # BACKOFF is supervisord retrying a quick exit (a port the previous instance has not
        # quite released, say); it turns FATAL once its retries are spent.
        if state in {"FATAL", "EXITED", "STOPPED"}:
            raise StackError(
                f"{component.title} exited ({state}) while starting. Last log lines:\n"
                + sup.log_tail(component.name)
            )
        reason = component.health() or ""
        if not reason:
            return
        time.sleep(0.25)
    raise StackError(
        f"{component.title} failed its health check within {timeout_s:.0f}s ({reason}). "
        f"Last log lines:\n{sup.log_tail(component.name)}"
    )


def _start(sup: Supervisor, component: Component, settings: StackSettings) -> str:
    state = sup.state(component.name)
    if state == "RUNNING" and component.health() is None:
        return "already running"
    if state not in {"RUNNING", "STARTING"}:
        busy = [p for p in component.ports if port_taken(settings.host, p)]
        if busy:
            owners = {p.port: p.variable for p in settings.listen_ports()}
            names = sorted({owners[p] for p in busy if p in owners})
            raise StackError(
                f"{component.title}: port(s) {busy} on {settings.host} are already in use by "
                "another process (listening there, or holding it as a connection's client "
                "port); stop it or choose other ports "
                f"({', '.join(names) or 'ROUTEIQ_STACK_*_PORT'})"
            )
        if component.prepare is not None:
            component.prepare()
        try:
            sup.start(component.name)
        except SupervisorError as exc:
            raise StackError(
                f"{component.title} did not start ({exc}). Last log lines:\n"
                + sup.log_tail(component.name)
            ) from exc
    _wait_healthy(sup, component, settings.start_timeout_s)
    return "started"


def _buckets(settings: StackSettings) -> str:
    store = ArtifactStore(make_minio(settings.s3))
    created = [
        name
        for name, versioned in (
            (settings.models_bucket, True),
            (settings.shards_bucket, False),
            (settings.mlflow_bucket, False),
        )
        if store.ensure_bucket(name, versioned=versioned)
    ]
    return f"created {', '.join(created)}" if created else "present"


def up(settings: StackSettings, echo: Echo = print) -> None:
    """Install what is missing, start every component in order, apply topics and schemas."""
    # Before anything starts: a port the kernel may hand any connection as its client port
    # makes a component fail at random, long after this check could have said why.
    settings.refuse_ephemeral_ports()
    timer = StepTimer(echo)
    settings.state.mkdir(parents=True, exist_ok=True)
    total = time.monotonic()
    echo(f"stack (state in {settings.state}):")
    with timer.step("kafka jars") as r:
        r["status"] = "downloaded" if install_kafka(settings) else "cached"
    comps = components(settings)
    sup = Supervisor(settings)
    with timer.step("supervisord") as r:
        from routeiq_cli.stack.supervisor import render_config

        r["status"] = sup.ensure_started(render_config(settings, comps))
    for component in (c for c in comps if c.phase == "infra"):
        with timer.step(component.name) as r:
            r["status"] = _start(sup, component, settings)
        if component.name == "s3":
            with timer.step("buckets") as r:
                r["status"] = _buckets(settings)
    with timer.step("topics") as r:
        changes = apply_topics(make_admin(settings.kafka), TOPICS)
        counts = {a: sum(c.action == a for c in changes) for a in ("created", "updated")}
        r["status"] = ", ".join(f"{n} {a}" for a, n in counts.items() if n) or "unchanged"
    with timer.step("schemas") as r:
        client = SchemaRegistryClient(settings.registry.client_config())
        results = register_all(client, TOPICS)
        new = sum(1 for res in results if res.registered)
        r["status"] = f"{new} registered" if new else "unchanged"
    # Services need their topics and schemas, so they start last.
    for component in (c for c in comps if c.phase == "service"):
        with timer.step(component.name) as r:
            r["status"] = _start(sup, component, settings)
    echo(f"ready in {time.monotonic() - total:.1f}s\n")
    echo(endpoints_table(settings))


def endpoints_table(settings: StackSettings) -> str:
    """Where everything listens, as printed after ``up``."""
    try:
        version = broker_version(make_admin(settings.kafka)).get(
            "inter.broker.protocol.version", "?"
        )
    except RouteIQError:
        version = "?"
    rows = [
        (
            "Kafka",
            f"{settings.host}:{settings.kafka_port}",
            f"Apache Kafka, KRaft, protocol {version}",
        ),
        ("Schema registry", settings.registry.url, "Confluent REST API"),
        (
            "S3 (SeaweedFS)",
            settings.s3.url,
            f"key {settings.s3_access_key}; buckets {settings.models_bucket} (versioned), "
            f"{settings.shards_bucket}, {settings.mlflow_bucket}",
        ),
        ("Redis", settings.redis.url, ""),
        ("MLflow", settings.mlflow_url, f"artifacts in s3://{settings.mlflow_bucket}/"),
        (
            "Jaeger UI",
            settings.jaeger_url,
            f"query API /api/traces; OTLP gRPC :{settings.otlp_grpc_port}, "
            f"HTTP :{settings.otlp_http_port}",
        ),
        (
            "Offline upstream",
            f"http://{settings.host}:{settings.upstream_port}/v1",
            "recorded benchmark answers (OpenAI API)",
        ),
    ]
    for i in range(settings.gateway_replicas):
        rows.append(
            (
                "Gateway" if i == 0 else f"Gateway {i + 1}",
                f"http://{settings.host}:{settings.gateway_port + i}/v1",
                "OpenAI API; model 'auto' routes" if i == 0 else "",
            )
        )
    rows.append(
        (
            "Labeler",
            f"http://{settings.host}:{settings.labeler_port}",
            f"windows of {settings.labeler_window_s:g}s → s3://{settings.shards_bucket}/shards/",
        )
    )
    rows.append(
        (
            "Trainer",
            f"http://{settings.host}:{settings.trainer_port}",
            f"MLflow experiments per router; follows {settings.router_name}",
        )
    )
    rows.append(
        (
            "Analytics",
            f"http://{settings.host}:{settings.analytics_port}",
            "dashboard; `routeiq report` for a table",
        )
    )
    lines = ["endpoints:"]
    lines += [f"  {name:<16} {where:<28} {note}".rstrip() for name, where, note in rows]
    lines.append(f"  logs             {settings.state / 'logs'}")
    lines.append(f"  secrets          {settings.state / 'secrets.json'} (admin key, signing keys)")
    return "\n".join(lines)


def down(settings: StackSettings, echo: Echo = print) -> None:
    """Stop every component (reverse order) and supervisord; all data is kept."""
    sup = Supervisor(settings)
    if not sup.running():
        echo("stack is not running")
        return
    timer = StepTimer(echo)
    for component in reversed(components(settings)):
        with timer.step(f"stop {component.name}"):
            sup.stop(component.name)
            # Stopped means gone: wait for its ports to close so an `up` right after can bind.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(
                port_open(settings.host, p) for p in component.ports
            ):
                time.sleep(0.1)
    with timer.step("stop supervisord"):
        sup.shutdown()


def clean(settings: StackSettings, echo: Echo = print) -> None:
    """Stop everything and delete the state folder (topics, schemas, objects, runs)."""
    down(settings, echo)
    if settings.state.exists():
        shutil.rmtree(settings.state)
        echo(f"removed {settings.state}")


def health(settings: StackSettings) -> dict[str, str | None]:
    """Each component's health: None when healthy, else the reason."""
    sup = Supervisor(settings)
    up_ = sup.running()
    report: dict[str, str | None] = {}
    for component in components(settings):
        if not up_:
            report[component.name] = "supervisord is not running"
            continue
        try:
            state = sup.state(component.name)
        except SupervisorError as exc:  # not in the running supervisord's config yet
            report[component.name] = str(exc)
            continue
        report[component.name] = component.health() if state == "RUNNING" else state
    return report


def status(settings: StackSettings, echo: Echo = print) -> bool:
    """Print each component's process state and health; True when all are healthy."""
    sup = Supervisor(settings)
    running = sup.running()
    healthy = True
    echo(f"state folder: {settings.state}")
    for component in components(settings):
        if not running:
            healthy = False
            echo(f"  {component.name:<16} DOWN      supervisord is not running")
            continue
        try:
            info = sup.info(component.name)
        except SupervisorError as exc:  # added to the config since supervisord started
            healthy = False
            echo(f"  {component.name:<16} UNKNOWN   {exc} (run make up)")
            continue
        problem = component.health() if info["statename"] == "RUNNING" else info["statename"]
        healthy = healthy and problem is None
        detail = str(info["description"]) if info["pid"] else ""
        verdict = "healthy" if problem is None else f"UNHEALTHY: {problem}"
        echo(
            f"  {component.name:<16} {info['statename']:<9} {verdict:<10} "
            f"{component.endpoint:<28} {detail}"
        )
    if running and healthy:
        try:
            info = broker_version(make_admin(settings.kafka))
            echo(f"  kafka broker: {info}")
            subjects = httpx.get(f"{settings.registry.url}/subjects", timeout=5).json()
            echo(f"  registry subjects: {len(subjects)}")
        except (RouteIQError, httpx.HTTPError) as exc:
            echo(f"  (details unavailable: {exc})")
    return healthy
