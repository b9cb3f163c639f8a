"""Self-verifying decision ids: ``<ms since epoch, hex>-<random>.<hmac tag>``.

Feedback may reach any replica, long after the decision, without shared state: every replica
holds the same key, recomputes the tag and checks the age, so an id that this fleet never
issued (or one older than the decision topic's retention) is refused as unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable


class DecisionIds:
    def __init__(self, key: bytes, *, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._ttl_s = ttl_s
        self._clock = clock

    def _tag(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:16]

    def new(self) -> str:
        body = f"{int(self._clock() * 1000):x}-{secrets.token_hex(8)}"
        return f"{body}.{self._tag(body)}"

    def check(self, decision_id: str) -> str | None:
        """None when the id is valid, else why not."""
        body, sep, tag = decision_id.partition(".")
        if not sep or len(decision_id) > 80:
            return "malformed decision id"
        if not hmac.compare_digest(self._tag(body), tag):
            return "unknown decision id (not issued by this gateway fleet)"
        try:
            issued_ms = int(body.split("-", 1)[0], 16)
        except ValueError:
            return "malformed decision id"
        age = self._clock() - issued_ms / 1000
        if age > self._ttl_s:
            return f"decision id expired ({age / 86400:.1f} days old)"
        return None
