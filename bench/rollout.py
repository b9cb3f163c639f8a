"""Rollout benchmark: announcement → every replica serving, for a ~50 MB bundle, under load.

Setup: the offline upstream (0 ms), three gateway replicas sharing one model cache (one
Redis lock per version), real Kafka/S3/Redis from the local stack; every replica's
embedding cache is warmed on the prompts first, so latency reflects routing and the swap.
A kNN bundle over synthetic 384-d examples sized to ~50 MB is uploaded per version; each
version is announced while clients keep requests flowing to all replicas.

Printed: per version, the time from the announcement to each replica serving it (p50 and max
over replicas and versions); request latency p50/p99 during the swap windows against steady
state (the same run, the same load), and the ratio.

Run: `make bench-rollout` or `uv run python bench/rollout.py` (the stack must be up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--examples", type=int, default=32_000, help="≈ 50 MB at 32k")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    from benchkit import bench_run, start_upstream, write_model_file
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from routeiq.contracts.catalog import MODEL_ANNOUNCEMENT
    from routeiq.contracts.serde import AvroSerde, RegistryResolver
    from routeiq.contracts.topics import MODEL_ANNOUNCEMENTS
    from routeiq.kafka import apply_topics, make_admin, make_producer
    from routeiq.routing.bundle import generate_ed25519, signer_from
    from routeiq.routing.datasets import load_gsm8k
    from routeiq.storage import ArtifactStore, make_minio
    from support.bundles import announce, knn_bundle, publish
    from support.kafka import register_values
    from support.processes import ServiceProcess, free_port, wait_until

    stack, work, tag = bench_run("rollout")
    topic = f"{tag}.announcements"
    apply_topics(make_admin(stack.kafka), [MODEL_ANNOUNCEMENTS.with_name(topic)])
    registry = SchemaRegistryClient(stack.registry.client_config())
    register_values(registry, {topic: MODEL_ANNOUNCEMENT})
    serde = AvroSerde.for_topic(MODEL_ANNOUNCEMENT, topic, resolver=RegistryResolver(registry))
    private, public = generate_ed25519()
    signer = signer_from("ed25519", private)
    store = ArtifactStore(make_minio(stack.s3))
    versions = [f"v{i + 1}" for i in range(args.versions)]
    built = {}
    print(f"building {len(versions)} bundles of {args.examples} examples...", flush=True)
    for i, v in enumerate(versions):
        folder = knn_bundle(
            work / v, name=tag, version=v, signer=signer, synthetic=args.examples, seed=i
        )
        size = sum(p.stat().st_size for p in folder.iterdir())
        built[v] = (folder, publish(store, stack.models_bucket, folder, name=tag, version=v), size)
    processes: list[ServiceProcess] = []
    try:
        upstream = start_upstream(work, processes)
        write_model_file(work, upstream, router_name=tag, default_strategy="threshold")
        urls = []
        for r in range(args.replicas):
            gport = free_port()
            processes.append(
                ServiceProcess(
                    "routeiq_gateway",
                    {
                        "ROUTEIQ_GATEWAY_PORT": str(gport),
                        "ROUTEIQ_GATEWAY_REPLICA_ID": f"r{r}",
                        "ROUTEIQ_GATEWAY_CONFIG_PATH": str(work / "models.yaml"),
                        "ROUTEIQ_GATEWAY_ADMIN_KEY": "bench-admin-key-0123456",
                        "ROUTEIQ_GATEWAY_DECISION_KEY": "bench-decision-key-0123",
                        "ROUTEIQ_GATEWAY_USER_SALT": "bench",
                        "ROUTEIQ_GATEWAY_VERIFY_KEY": public,
                        "ROUTEIQ_GATEWAY_TELEMETRY_ENABLED": "false",
                        "ROUTEIQ_GATEWAY_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
                        "ROUTEIQ_GATEWAY_REGISTRY__URL": stack.registry.url,
                        "ROUTEIQ_GATEWAY_S3__ENDPOINT": stack.s3.endpoint,
                        "ROUTEIQ_GATEWAY_REDIS__URL": stack.redis.url,
                        "ROUTEIQ_GATEWAY_ANNOUNCEMENTS_TOPIC": topic,
                        "ROUTEIQ_GATEWAY_SPOOL_DIR": str(work / f"r{r}" / "spool"),
                        "ROUTEIQ_GATEWAY_MODEL_CACHE_DIR": str(work / "shared-cache"),
                        "ROUTEIQ_GATEWAY_AUDIT_LOG": str(work / f"r{r}" / "audit.jsonl"),
                        "ROUTEIQ_UPSTREAM_API_KEY": "offline",
                    },
                    work / f"r{r}.log",
                    health_url=f"http://127.0.0.1:{gport}/health/ready",
                ).start()
            )
            urls.append(f"http://127.0.0.1:{gport}")

        prompts = load_gsm8k().prompts[:100]
        # Warm every replica's embedding cache: the measurement is about swaps, not MiniLM.
        with httpx.Client(timeout=60) as http:
            for url in urls:
                for p in prompts:
                    http.post(
                        f"{url}/v1/chat/completions",
                        json={"model": "auto", "messages": [{"role": "user", "content": p}]},
                    )
        samples: list[tuple[float, float]] = []  # (start, latency ms)
        errors = [0]
        stop = threading.Event()
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(timeout=60) as http:
                i = n
                while not stop.is_set():
                    url = urls[i % len(urls)]
                    started = time.time()
                    r = http.post(
                        f"{url}/v1/chat/completions",
                        json={
                            "model": "auto",
                            "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                        },
                    )
                    with lock:
                        samples.append((started, (time.time() - started) * 1000))
                        errors[0] += r.status_code != 200
                    i += args.clients

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(10)  # steady state before the first announcement
        producer = make_producer(stack.kafka, client_id="bench-rollout")
        swap_windows: list[tuple[float, float]] = []
        to_serving: list[float] = []
        for v in versions:
            folder, location, _ = built[v]
            announced = time.time()
            announce(producer, serde, topic, name=tag, version=v, location=location, folder=folder)
            seen: dict[str, float] = {}

            def all_serving(v: str = v, seen: dict[str, float] = seen) -> bool:
                for url in urls:
                    if (
                        url not in seen
                        and httpx.get(f"{url}/health/ready").json()["sync"]["active_version"] == v
                    ):
                        seen[url] = time.time()
                return len(seen) == len(urls)

            wait_until(all_serving, timeout=300, what=f"{v} on every replica", interval=0.05)
            to_serving += [t - announced for t in seen.values()]
            swap_windows.append((announced, max(seen.values())))
            time.sleep(10)  # steady state between versions
        stop.set()
        for t in threads:
            t.join()
    finally:
        for proc in reversed(processes):
            proc.stop()

    def during_swap(start: float) -> bool:
        return any(a <= start <= b for a, b in swap_windows)

    swap = [ms for s, ms in samples if during_swap(s)]
    steady = [ms for s, ms in samples if not during_swap(s)]
    mb = statistics.mean(size for _, _, size in built.values()) / 1e6
    print("\nRouteIQ rollout benchmark")
    print(
        f"  {args.replicas} replicas sharing one cache, {len(versions)} versions of a "
        f"{mb:.1f} MB kNN bundle, {args.clients} clients, offline upstream at 0 ms"
    )
    print(f"\nannouncement → serving, per replica and version ({len(to_serving)} samples)")
    print(f"  p50 {np.percentile(to_serving, 50):6.2f} s   max {max(to_serving):6.2f} s")
    print(f"\nrequest latency ({len(samples)} requests, {errors[0]} errors)")
    print(f"  {'':<14} {'n':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for label, values in (("steady state", steady), ("during swaps", swap)):
        print(
            f"  {label:<14} {len(values):>6} {np.percentile(values, 50):>8.1f} "
            f"{np.percentile(values, 99):>8.1f}"
        )
    print(
        f"  p99 ratio during swaps / steady: "
        f"{np.percentile(swap, 99) / np.percentile(steady, 99):.2f}x"
    )


if __name__ == "__main__":
    main()
