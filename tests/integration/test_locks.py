"""RenewingLock against real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from routeiq.errors import LockError
from routeiq.locks import RenewingLock

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis.url)


def test_only_one_holder_at_a_time(client, unique) -> None:
    name = unique("lock")
    first = RenewingLock(client, name, ttl_s=5, blocking_timeout_s=0.2)
    second = RenewingLock(client, name, ttl_s=5, blocking_timeout_s=0.2)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_the_holder_keeps_the_lock_past_its_ttl_by_renewing(client, unique) -> None:
    name = unique("lock")
    holder = RenewingLock(client, name, ttl_s=0.6, blocking_timeout_s=0.1)
    with holder.held():
        time.sleep(1.5)  # 2.5 TTLs: without renewal the key would be gone
        assert client.exists(name)
        assert not RenewingLock(client, name, ttl_s=1, blocking_timeout_s=0.1).acquire()
        assert not holder.lost.is_set()
    assert not client.exists(name)


def test_a_dead_holder_lets_the_lock_expire(client, unique) -> None:
    name = unique("lock")
    # A holder that dies stops renewing: emulate with a plain redis-py lock that is never
    # renewed nor released.
    client.lock(name, timeout=0.5, thread_local=False).acquire()
    waiter = RenewingLock(client, name, ttl_s=5, blocking_timeout_s=3)
    started = time.monotonic()
    assert waiter.acquire()
    assert time.monotonic() - started >= 0.3
    waiter.release()


def test_release_from_another_thread(client, unique) -> None:
    lock = RenewingLock(client, unique("lock"), ttl_s=5)
    assert lock.acquire()
    worker = threading.Thread(target=lock.release)
    worker.start()
    worker.join()
    assert not client.exists(lock.name)


def test_timeout_raises_lock_error(client, unique) -> None:
    name = unique("lock")
    contender = RenewingLock(client, name, ttl_s=5, blocking_timeout_s=0.2)
    with (
        RenewingLock(client, name, ttl_s=5).held(),
        pytest.raises(LockError, match="timed out"),
        contender.held(),
    ):
        pass
