"""Control-plane benchmark: one routing change → every replica serving it, under load.

Setup: the offline upstream (0 ms) and three gateway replicas (telemetry and model sync off)
on a private control topic and audit topic of the local stack's Kafka, with the stack's Redis
for the write lock. Clients keep requests flowing to all replicas, each as one of many users.

Measured, all while the load runs:
* propagation: for each of ``--changes`` changes written through one replica, the time from
  sending the ``PUT`` to the last replica reporting the new version on ``/admin/router``;
  against the baseline measured in the same run, three replicas without the control topic
  changed as before it existed, a ``PUT`` to each in turn until the last reports it;
* the kill switch: with every user on the ``strongest`` strategy (an A/B arm of weight 1),
  the time from sending the switch to the last request that a non-default strategy served,
  and to the last replica reporting it;
* a 10% rollout: the share of users served the rolled-out strategy, and whether any user
  was served by both (stickiness);
* a replica restarted afterwards: the version it serves at its first answer;
* failed requests over the whole run (anything but a 200).

Run: `make bench-control` or `uv run python bench/control.py` (the stack must be up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ADMIN = {"authorization": "Bearer bench-admin-key-0123456", "x-routeiq-operator": "bench"}


class Load:
    """Clients sending chat requests round-robin to the replicas, as ``users`` users."""

    def __init__(self, urls: list[str], prompts: list[str], *, clients: int, users: int) -> None:
        self.urls, self.prompts, self.users = urls, prompts, users
        # (sent, status, strategy, user) per request.
        self.samples: list[tuple[float, int, str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n, clients)) for n in range(clients)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _run(self, n: int, step: int) -> None:
        with httpx.Client(timeout=60) as http:
            i = n
            while not self._stop.is_set():
                user = f"user-{i % self.users}"
                sent = time.monotonic()
                r = http.post(
                    f"{self.urls[i % len(self.urls)]}/v1/chat/completions",
                    json={
                        "model": "auto",
                        "messages": [
                            {"role": "user", "content": self.prompts[i % len(self.prompts)]}
                        ],
                    },
                    headers={"x-routeiq-user": user},
                )
                with self._lock:
                    self.samples.append(
                        (sent, r.status_code, r.headers.get("x-routeiq-strategy", ""), user)
                    )
                i += step

    def since(self, t: float) -> list[tuple[float, int, str, str]]:
        with self._lock:
            return [s for s in self.samples if s[0] >= t]


def put(url: str, body: dict[str, Any]) -> int:
    r = httpx.put(f"{url}/admin/strategies", json=body, headers=ADMIN, timeout=30)
    r.raise_for_status()
    version: int = r.json()["control"]["written"]["version"]
    return version


def put_each(urls: list[str], body: dict[str, Any]) -> float:
    """The baseline: ``body`` sent to every replica in turn (each applies it alone, no control
    topic); seconds until the last one reports it."""
    sent = time.monotonic()
    with httpx.Client(timeout=30, headers=ADMIN) as http:
        for url in urls:
            http.put(f"{url}/admin/strategies", json=body).raise_for_status()
        for url in urls:
            while http.get(f"{url}/admin/router").json()["routing"]["epsilon"] != body["epsilon"]:
                time.sleep(0.01)
    return time.monotonic() - sent


def wait_version(urls: list[str], version: int) -> float:
    """Poll every replica until all report ``version``; the monotonic time the last did."""
    pending = set(urls)
    with httpx.Client(timeout=10, headers=ADMIN) as http:
        while pending:
            for url in list(pending):
                if http.get(f"{url}/admin/router").json()["control"]["version"] >= version:
                    pending.discard(url)
            time.sleep(0.01)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()

    from benchkit import bench_run, start_upstream, write_model_file
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from routeiq.contracts.catalog import ROUTING_CONFIG
    from routeiq.contracts.topics import ROUTING_CONFIG_AUDIT, ROUTING_CONFIGS
    from routeiq.kafka import apply_topics, make_admin
    from routeiq.routing.datasets import load_gsm8k
    from support.kafka import register_values
    from support.processes import ServiceProcess, free_port

    stack, work, tag = bench_run("control")
    topics = {
        "CONTROL_TOPIC": ROUTING_CONFIGS.with_name(f"{tag}.config"),
        "CONTROL_AUDIT_TOPIC": ROUTING_CONFIG_AUDIT.with_name(f"{tag}.audit"),
    }
    apply_topics(make_admin(stack.kafka), list(topics.values()))
    registry = SchemaRegistryClient(stack.registry.client_config())
    register_values(registry, {spec.name: ROUTING_CONFIG for spec in topics.values()})
    processes: list[ServiceProcess] = []

    def replica(name: str, *, control: bool = True) -> str:
        port = free_port()
        env = {
            "PORT": str(port),
            "REPLICA_ID": name,
            "CONFIG_PATH": str(work / "models.yaml"),
            "ADMIN_KEY": ADMIN["authorization"].removeprefix("Bearer "),
            "DECISION_KEY": "bench-decision-key-0123",
            "USER_SALT": "bench",
            "TELEMETRY_ENABLED": "false",
            "SYNC_ENABLED": "false",
            "KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "REGISTRY__URL": stack.registry.url,
            "REDIS__URL": stack.redis.url,
            "SPOOL_DIR": str(work / name / "spool"),
            **{key: spec.name for key, spec in topics.items()},
            "CONTROL_ENABLED": str(control).lower(),
        }
        processes.append(
            ServiceProcess(
                "routeiq_gateway",
                {
                    **{f"ROUTEIQ_GATEWAY_{k}": v for k, v in env.items()},
                    "ROUTEIQ_UPSTREAM_API_KEY": "offline",
                },
                work / f"{name}.log",
                health_url=f"http://127.0.0.1:{port}/health/ready",
            ).start()
        )
        return f"http://127.0.0.1:{port}"

    try:
        upstream = start_upstream(work, processes)
        write_model_file(work, upstream, default_strategy="threshold", router_name=None)
        urls = [replica(f"r{r}") for r in range(args.replicas)]
        # The baseline: replicas without the control topic, changed the way one had to before
        # it, a PUT to each replica in turn (no traffic on them: the load is on the others).
        direct = [replica(f"d{r}", control=False) for r in range(args.replicas)]
        prompts = load_gsm8k().prompts[:50]
        results: dict[str, Any] = {}
        with Load(urls, prompts, clients=args.clients, users=args.users) as load:
            time.sleep(3)
            spread = []
            for i in range(args.changes):
                sent = time.monotonic()
                version = put(urls[i % len(urls)], {"epsilon": round(0.01 * (i % 5), 2)})
                spread.append(wait_version(urls, version) - sent)
            results["spread"] = spread
            results["direct"] = [
                put_each(direct, {"epsilon": round(0.01 * (i % 5), 2)}) for i in range(args.changes)
            ]

            version = put(urls[0], {"ab": {"strongest": 1.0}, "epsilon": 0.0})
            wait_version(urls, version)
            time.sleep(2)
            sent = time.monotonic()
            version = put(urls[1], {"kill_switch": True, "reason": "bench"})
            everywhere = wait_version(urls, version) - sent
            time.sleep(2)
            late = [s for s in load.since(sent) if s[2] != "threshold"]
            results["kill"] = (
                everywhere,
                max((s[0] for s in late), default=sent) - sent,
                len(late),
            )

            version = put(
                urls[2],
                {
                    "kill_switch": False,
                    "ab": {},
                    "rollout": {"strategy": "strongest", "percent": 10},
                },
            )
            wait_version(urls, version)
            rollout_from = time.monotonic()
            time.sleep(max(10.0, args.users / 100))
            by_user: dict[str, set[str]] = defaultdict(set)
            for _, status, strategy, user in load.since(rollout_from):
                if status == 200:
                    by_user[user].add(strategy)
            results["rollout"] = by_user
        processes.pop(1 + args.replicas - 1).stop()
        started = time.monotonic()
        restarted = replica("r-restarted")
        ready_s = time.monotonic() - started
        restarted_version = httpx.get(f"{restarted}/admin/router", headers=ADMIN).json()["control"][
            "version"
        ]
    finally:
        for proc in reversed(processes):
            proc.stop()

    failed = sum(1 for s in load.samples if s[1] != 200)
    spread = sorted(results["spread"])
    baseline = sorted(results["direct"])
    everywhere, last_non_default, late = results["kill"]
    users = results["rollout"]
    rolled = sum(1 for s in users.values() if "strongest" in s)
    both = sum(1 for s in users.values() if len(s) > 1)
    print("\nRouteIQ control-plane benchmark")
    print(
        f"  {args.replicas} replicas, {args.clients} clients as {args.users} users, upstream 0 ms"
    )
    print(f"  requests: {len(load.samples)}, failed: {failed}")
    print(
        f"  change → all replicas: p50 {statistics.median(spread) * 1000:.0f} ms, "
        f"max {spread[-1] * 1000:.0f} ms over {len(spread)} changes"
    )
    print(
        f"  baseline, a PUT to each replica in turn (no control topic): p50 "
        f"{statistics.median(baseline) * 1000:.0f} ms, max {baseline[-1] * 1000:.0f} ms; "
        f"ratio of medians {statistics.median(spread) / statistics.median(baseline):.2f}x"
    )
    print(
        f"  kill switch → all replicas report it: {everywhere * 1000:.0f} ms; last request served "
        f"by another strategy was sent {last_non_default * 1000:.0f} ms after the switch "
        f"({late} such requests)"
    )
    print(
        f"  10% rollout: {rolled}/{len(users)} users = {100 * rolled / max(len(users), 1):.1f}% "
        f"served the rolled-out strategy; users served by both: {both}"
    )
    print(f"  restarted replica: version {restarted_version} at its first answer ({ready_s:.1f} s)")


if __name__ == "__main__":
    main()
