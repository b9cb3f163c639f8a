"""Redis: the gateways' shared state (strategies, budgets), append-only, no snapshots."""

from __future__ import annotations

import shutil

import redis

from routeiq_cli.stack.components.base import Component, Probe, flags, prepare_dir
from routeiq_cli.stack.settings import StackSettings


def _redis_health(settings: StackSettings) -> Probe:
    def probe() -> str | None:
        try:
            client = redis.Redis(host=settings.host, port=settings.redis_port, socket_timeout=2)
            return None if client.ping() else "PING returned false"
        except redis.RedisError as exc:
            return f"PING failed: {exc}"

    return probe


def redis_component(settings: StackSettings) -> Component:
    options: dict[str, str | int | bool] = {
        "bind": settings.host,
        "port": settings.redis_port,
        "dir": str(settings.state / "redis"),
        "appendonly": "yes",
        "save": "",
        "daemonize": "no",
        "protected-mode": "yes",
        "logfile": "",
    }
    return Component(
        name="redis",
        title="Redis",
        command=[
            shutil.which("redis-server") or "redis-server",
            *flags(options, dash="--", joined=False),
        ],
        ports=[settings.redis_port],
        health=_redis_health(settings),
        endpoint=f"redis://{settings.host}:{settings.redis_port}/0",
        prepare=prepare_dir(settings.state / "redis"),
    )
