"""A Redis lock that renews itself while held, for work that takes as long as it takes.

redis-py's ``Lock`` expires after ``ttl_s`` so a dead holder cannot block others forever; a
background thread extends it while the holder is alive. ``thread_local=False`` because the
renewer thread must act on the token the acquiring thread took.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError as RedisLockError
from redis.exceptions import RedisError

from routeiq.errors import LockError

log = logging.getLogger(__name__)


class RenewingLock:
    """Acquire with a timeout, renew every ``ttl_s / 3`` while held, release on exit."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        *,
        ttl_s: float = 30.0,
        blocking_timeout_s: float | None = 60.0,
    ) -> None:
        self.name = name
        self._ttl_s = ttl_s
        self._lock = client.lock(
            name, timeout=ttl_s, blocking_timeout=blocking_timeout_s, thread_local=False
        )
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = threading.Event()  # set if a renewal failed: the holder should stop

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; False when it was not obtained within the blocking timeout."""
        try:
            acquired = bool(self._lock.acquire(blocking=blocking))
        except RedisError as exc:
            raise LockError(f"cannot acquire {self.name}: {exc}") from exc
        if acquired:
            self._stop.clear()
            self.lost.clear()
            self._renewer = threading.Thread(
                target=self._renew, name=f"lock-renew:{self.name}", daemon=True
            )
            self._renewer.start()
        return acquired

    def release(self) -> None:
        """Stop renewing and release; a lock that already expired is not an error here."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self._ttl_s)
            self._renewer = None
        try:
            self._lock.release()
        except RedisLockError:
            log.warning("lock %s had already expired or changed hands at release", self.name)
        except RedisError as exc:
            raise LockError(f"cannot release {self.name}: {exc}") from exc

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl_s / 3):
            try:
                self._lock.reacquire()
            except (RedisLockError, RedisError) as exc:
                log.warning("lost lock %s: %s", self.name, exc)
                self.lost.set()
                return

    @contextmanager
    def held(self) -> Iterator[RenewingLock]:
        """``with lock.held():`` — raises ``LockError`` if not acquired in time."""
        if not self.acquire():
            raise LockError(f"timed out waiting for {self.name}")
        try:
            yield self
        finally:
            self.release()
