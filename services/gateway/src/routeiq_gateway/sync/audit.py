"""The audit trail of router changes: a local JSON-lines file and a fleet-wide Redis stream."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import redis
from routeiq.dependencies import Dependency

# One logger for model sync, as before the split: operators grep for "routeiq_gateway.sync".
log = logging.getLogger(__package__)

AUDIT_STREAM = "routeiq:audit:{name}"


class AuditTrail:
    """Append-only record of who changed which router, when, from what, to what and why."""

    def __init__(
        self,
        path: Path,
        *,
        redis_client: redis.Redis | None,
        name: str | None,
        replica: str,
        redis_state: Dependency | None = None,
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._redis = redis_client
        self._stream = AUDIT_STREAM.format(name=name or "default")
        self._replica = replica
        self._redis_state = redis_state
        self._lock = threading.Lock()

    def write(
        self,
        *,
        action: str,
        who: str,
        from_version: str | None,
        to_version: str | None,
        why: str,
        at: float | None = None,
    ) -> dict[str, Any]:
        """Record one change; ``at`` is when it took effect (default: now)."""
        when = time.time() if at is None else at
        entry = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
            "at_ms": int(when * 1000),
            "replica": self._replica,
            "action": action,
            "who": who,
            "from": from_version,
            "to": to_version,
            "why": why,
        }
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        if self._redis is not None:
            try:
                self._redis.xadd(
                    self._stream, {"entry": json.dumps(entry)}, maxlen=10_000, approximate=True
                )
            except redis.RedisError as exc:
                # Kept locally only; the loss is logged once by the dependency's state.
                if self._redis_state is None:
                    log.warning("audit entry kept locally only (Redis: %s)", exc)
                else:
                    self._redis_state.failed(f"audit stream: {exc}")
            else:
                if self._redis_state is not None:
                    self._redis_state.recovered()
        return entry

    def tail(self, limit: int = 100) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in lines if line.strip()]
