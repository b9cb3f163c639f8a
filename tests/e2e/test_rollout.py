"""Model rollout across gateway processes: announcement → locked sync → verified hot-swap.

Real Kafka (announcements), S3 (bundles), Redis (locks, audit) and several gateway processes
sharing one model cache.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from routeiq.kafka import make_producer
from routeiq.routing.bundle import generate_ed25519, signer_from
from routeiq.routing.datasets import load_gsm8k
from routeiq.storage import ArtifactStore, make_minio
from support.bundles import announce, knn_bundle, publish
from support.processes import free_port, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def rollout(stack, signing_keys, unique, tmp_path: Path):
    """Per-test router name, signer, S3 store and an announcer for the gateways' topic."""
    name = unique("router")
    signer = signer_from("ed25519", signing_keys[0])
    store = ArtifactStore(make_minio(stack.s3))
    producer = make_producer(stack.kafka, client_id="rollout-test")

    class Rollout:
        def __init__(self) -> None:
            self.name = name
            self.store = store
            self.bucket = stack.settings.models_bucket
            self.folders: dict[str, Path] = {}
            self.locations: dict = {}

        def build(self, version: str, *, signer_=signer, **kw) -> Path:
            folder = knn_bundle(
                tmp_path / f"b-{version}", name=name, version=version, signer=signer_, **kw
            )
            self.folders[version] = folder
            self.locations[version] = publish(
                store, self.bucket, folder, name=name, version=version
            )
            return folder

        def announce(self, gw, version: str, **kw) -> None:
            announce(
                producer,
                gw.announcement_serde,
                gw.announcements_topic,
                name=name,
                version=version,
                location=self.locations[version],
                folder=self.folders[version],
                **kw,
            )

    return Rollout()


def status(gw) -> dict:
    return httpx.get(f"{gw.url}/health/ready", timeout=10).json()["sync"]


def metric(gw, name: str) -> float:
    total = 0.0
    for line in httpx.get(f"{gw.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_active(gws, version: str, timeout: float = 90) -> None:
    wait_until(
        lambda: all(status(g)["active_version"] == version for g in gws),
        timeout=timeout,
        what=f"every replica to serve {version}",
    )


def ask(gw, prompt: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        timeout=60,
        json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
    )


def test_hot_swap_under_load_drops_nothing_and_downloads_once(
    rollout, gateway_factory, tmp_path: Path
) -> None:
    cache = tmp_path / "shared-cache"
    routing = {"router_name": rollout.name, "default_strategy": "threshold", "epsilon": 0.0}
    gws = [gateway_factory(routeiq=routing, name=f"r{i}", cache_dir=cache) for i in range(3)]
    versions = ["v1", "v2", "v3"]
    for i, v in enumerate(versions):
        rollout.build(v, examples=150 + 50 * i, k=10 + 5 * i)
    prompts = load_gsm8k().prompts[:300]
    total, announce_at = 5000, {800: "v1", 2200: "v2", 3600: "v3"}
    results: list[tuple[int, float, float, int, str]] = []
    lock = threading.Lock()
    counter = itertools.count()

    def one(_: int) -> None:
        i = next(counter)
        if i in announce_at:
            rollout.announce(gws[0], announce_at[i])
        replica = i % 3
        started = time.time()
        try:
            r = ask(gws[replica], prompts[i % len(prompts)])
            code, version = r.status_code, r.headers.get("x-routeiq-router-version", "?")
        except httpx.HTTPError as exc:
            code, version = 0, repr(exc)
        with lock:
            results.append((replica, started, time.time(), code, version))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(total)))
    wait_active(gws, "v3")

    failed = [r for r in results if r[3] != 200]
    assert failed == [], failed[:5]
    assert len(results) >= 5000
    seen = {r[4] for r in results}
    assert seen <= {"none", *versions}
    assert "v2" in seen
    downloads = sum(metric(g, "routeiq_gateway_sync_downloads_total") for g in gws)
    assert downloads == 3  # one per version across the three replicas sharing the cache

    auth = gws[0].admin_headers
    for replica, gw in enumerate(gws):
        entries = httpx.get(f"{gw.url}/admin/audit", headers=auth, timeout=10).json()["entries"]
        swaps = [(e["at_ms"] / 1000, e["to"]) for e in entries if e["action"] == "activate"]
        assert [v for _, v in swaps] == versions
        timeline = [(0.0, "none"), *swaps, (float("inf"), None)]
        for _, started, ended, _, version in (r for r in results if r[0] == replica):
            # The version served was active at some instant while the request was in flight.
            k = next(i for i, (_, v) in enumerate(timeline) if v == version)
            context = (replica, version, started, ended, timeline)
            assert timeline[k][0] <= ended, context
            assert timeline[k + 1][0] >= started, context


def announce_rejected(rollout, gw, version: str) -> dict:
    """Announce ``version`` and wait until the gateway has settled it; its last sync result."""
    rollout.announce(gw, version)
    wait_until(
        lambda: status(gw)["last"].get("version") == version,
        timeout=60,
        what=f"the {version} rejection",
    )
    return status(gw)["last"]


def test_corrupt_or_wrongly_signed_bundles_are_rejected_and_the_old_one_serves(
    rollout, gateway_factory
) -> None:
    gw = gateway_factory(routeiq={"router_name": rollout.name, "default_strategy": "threshold"})
    rollout.build("v1")
    rollout.announce(gw, "v1")
    wait_active([gw], "v1")

    other_signer = signer_from("ed25519", generate_ed25519()[0])
    rollout.build("v2", signer_=other_signer)
    last = announce_rejected(rollout, gw, "v2")
    assert (last["result"], last["stage"]) == ("rejected", "verify")
    assert "key" in last["reason"]
    assert ask(gw, "What is 3+4?").headers["x-routeiq-router-version"] == "v1"

    rollout.build("v3")
    key = f"{rollout.locations['v3'].prefix}knn.npz"
    rollout.store.put_bytes(rollout.bucket, key, b"not the signed bytes")  # a newer object
    last = announce_rejected(rollout, gw, "v3")
    assert (last["result"], last["stage"]) == ("rejected", "download")
    assert "sha256" in last["reason"]
    assert status(gw)["active_version"] == "v1"
    assert metric(gw, "routeiq_gateway_sync_failures_total") == 2
    r = ask(gw, "What is 3+4?")
    assert r.status_code == 200
    assert r.headers["x-routeiq-router-version"] == "v1"


HOLDER = """
import sys, time, redis
from routeiq.locks import RenewingLock
lock = RenewingLock(redis.Redis.from_url(sys.argv[1]), sys.argv[2], ttl_s=3.0)
assert lock.acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_a_dead_lock_holder_lets_another_replica_finish_the_sync(
    stack, rollout, gateway_factory, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    routing = {"router_name": rollout.name, "default_strategy": "threshold"}
    gws = [
        gateway_factory(
            routeiq=routing, name=f"l{i}", cache_dir=cache, ROUTEIQ_GATEWAY_LOCK_TTL_S="3"
        )
        for i in range(2)
    ]
    rollout.build("v1")
    # A replica that took the lock, started writing into the cache, then died.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, stack.redis.url, f"routeiq:sync:local:{rollout.name}:v1"],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == b"holding"
    partial = cache / rollout.name / ".tmp-v1-dead-replica-0000"
    partial.mkdir(parents=True)
    (partial / "manifest.json").write_text("{ half a file")
    rollout.announce(gws[0], "v1")
    wait_until(
        lambda: all(metric(g, "routeiq_gateway_sync_lock_contention_total") >= 1 for g in gws),
        timeout=60,
        what="both replicas to wait on the lock",
    )
    assert all(status(g)["active_version"] is None for g in gws)
    holder.kill()
    holder.wait()
    wait_active(gws, "v1", timeout=60)
    assert sum(metric(g, "routeiq_gateway_sync_downloads_total") for g in gws) == 1


def test_sync_completes_when_redis_is_down(rollout, gateway_factory, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), timeout=20, what="private redis")
    gw = gateway_factory(
        routeiq={"router_name": rollout.name},
        ROUTEIQ_GATEWAY_REDIS__URL=f"redis://127.0.0.1:{port}/0",
        ROUTEIQ_GATEWAY_REDIS_RETRIES="2",
    )
    server.terminate()
    server.wait(20)
    rollout.build("v1")
    rollout.announce(gw, "v1")
    wait_active([gw], "v1", timeout=60)
    assert metric(gw, "routeiq_gateway_sync_without_lock_total") == 1
    entries = httpx.get(f"{gw.url}/admin/audit", headers=gw.admin_headers).json()["entries"]
    assert [e["to"] for e in entries if e["action"] == "activate"] == ["v1"]


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_rollback_to_previous_and_to_a_named_version_is_audited(rollout, gateway_factory) -> None:
    gw = gateway_factory(routeiq={"router_name": rollout.name, "default_strategy": "threshold"})
    for v in ("v1", "v2", "v3"):
        rollout.build(v)
        rollout.announce(gw, v)
        wait_active([gw], v)
    url, auth = f"{gw.url}/admin/model/rollback", gw.admin_headers
    assert httpx.post(url, json={"version": "previous"}).status_code == 401
    r = httpx.post(
        url,
        headers={**auth, "x-routeiq-operator": "alice"},
        json={"version": "previous", "reason": "bad answers on math"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"rolled_back_from": "v3", "active_version": "v2"}
    assert ask(gw, "What is 5+5?").headers["x-routeiq-router-version"] == "v2"
    r = httpx.post(url, headers={**auth, "x-routeiq-operator": "bob"}, json={"version": "v1"})
    assert r.json()["active_version"] == "v1"
    missing = httpx.post(url, headers=auth, json={"version": "v9"})
    assert missing.status_code == 400
    assert "not in the local cache" in missing.json()["error"]["message"]
    assert status(gw)["active_version"] == "v1"
    entries = httpx.get(f"{gw.url}/admin/audit", headers=auth).json()["entries"]
    rollbacks = [
        (e["who"], e["from"], e["to"], e["why"]) for e in entries if e["action"] == "rollback"
    ]
    assert rollbacks == [
        ("alice", "v3", "v2", "bad answers on math"),
        ("bob", "v2", "v1", "rollback to v1"),
    ]
    assert all(e["at"] and e["replica"] for e in entries)
