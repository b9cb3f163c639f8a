"""Gateway benchmark: RouteIQ against the LiteLLM proxy, same machine, same run.

Nine candidates (LLMRouter's models and prices), each behind the offline upstream at 0 ms
latency, driven by the same client at a fixed concurrency with dcrouter_test prompts:

  a   RouteIQ, the default learned router (kNN on the static + sketch features, trained on
      dcrouter_train) under the cost-aware strategy over all 9 candidates (λ calibrated to a
      cost target), telemetry on (an Avro event to Kafka per request, the 768-d feature
      vector in it), feature cache OFF: every request featurises its prompt
  a*  a as `make up` runs it: spans exported to the stack's Jaeger (OTLP/HTTP, every request
      sampled, the span event carrying the decision and its embedding) and the query key set
      (an HMAC-SHA256 of the prompt in each event); spans leave in batches of 64
  a*L a* with the SDK's batch of 512 spans (the default before 2026-12-07), beside it. Compare
      the two with rounds longer than the SDK's 5 s export delay (`--requests 2000`): with
      shorter ones a gateway's batch is mostly exported while it idles through the others'
      rounds, and the pause it causes is not seen
  a+  a with the feature cache on and prompts repeating
  b   RouteIQ, `random` strategy, telemetry off, no features
  c   the LiteLLM proxy (`litellm --config`, the same model_list), calling one model

Rounds are interleaved (a, a*, a*L, a+, b, c, a, ...) and medians reported with ratios a/c,
a/b, a*/a and a*/a*L,
with each server's own CPU time per request (user + system, from /proc, all its threads): on
a small machine the client, the upstream and the server share the cores, so CPU per request
says what a server costs more steadily than its throughput does.
Also the routing decision alone (features + router + policy, uncached, 9 candidates,
in-process) for the default pipeline and, as the baseline measured alongside, the MiniLM one.

Run: `make bench-gateway` (starts the stack if needed) or `uv run python bench/gateway.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def drive(url: str, model: str, prompts: list[str], concurrency: int) -> dict[str, float]:
    """Send every prompt once with ``concurrency`` requests in flight; latency in ms."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    prompt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                r = await client.post(
                    "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                )
                latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rps": len(prompts) / elapsed,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "errors": errors,
    }


def model_file(path: Path, upstream: str, routeiq: dict | None) -> Path:
    data = yaml.safe_load((REPO / "services/gateway/config/llmrouter.yaml").read_text())
    for d in data["model_list"]:
        d["litellm_params"]["api_base"] = upstream
    if routeiq is None:
        data.pop("routeiq")
    else:
        data["routeiq"].update(routeiq)
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from benchkit import bench_run, start_upstream
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from routeiq.contracts.catalog import FEEDBACK, MODEL_ANNOUNCEMENT, ROUTER_DECISION
    from routeiq.contracts.serde import AvroSerde, RegistryResolver
    from routeiq.contracts.topics import FEEDBACK_EVENTS, MODEL_ANNOUNCEMENTS, ROUTER_DECISIONS
    from routeiq.kafka import apply_topics, make_admin, make_producer
    from routeiq.routing.bundle import generate_ed25519, load_bundle, signer_from, verifier_from
    from routeiq.routing.datasets import load_llmrouter
    from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
    from routeiq.routing.featurizer import minilm_pipeline, open_pipeline
    from routeiq.routing.strategies import BundleHolder, ModelOption, RouteInput
    from routeiq.storage import ArtifactStore, make_minio
    from routeiq_gateway.config import load_model_file
    from support.bundles import announce, llmrouter_bundle, publish
    from support.kafka import register_values
    from support.processes import ServiceProcess, free_port, wait_until

    stack, work, tag = bench_run("gateway")
    processes: list[ServiceProcess] = []
    test = load_llmrouter(split="test")
    features = open_pipeline("static", folder=stack.state / "features" / "static")
    try:
        upstream = start_upstream(work, processes, datasets=("llmrouter-train", "llmrouter-test"))

        # -- private topics, subjects, a signed kNN bundle trained on the train half
        names = {
            "decisions": f"{tag}.decisions",
            "feedback": f"{tag}.feedback",
            "announcements": f"{tag}.announcements",
        }
        specs = [
            (ROUTER_DECISIONS, ROUTER_DECISION, "decisions"),
            (FEEDBACK_EVENTS, FEEDBACK, "feedback"),
            (MODEL_ANNOUNCEMENTS, MODEL_ANNOUNCEMENT, "announcements"),
        ]
        apply_topics(make_admin(stack.kafka), [s.with_name(names[n]) for s, _, n in specs])
        registry = SchemaRegistryClient(stack.registry.client_config())
        register_values(registry, {names[n]: contract for _, contract, n in specs})
        private, public = generate_ed25519()
        signer = signer_from("ed25519", private)
        print(f"building the kNN bundle ({features.id}, dcrouter_train)...", flush=True)
        folder = llmrouter_bundle(
            work / "bundle", name=tag, version="v1", signer=signer, featurizer=features
        )
        location = publish(
            ArtifactStore(make_minio(stack.s3)), stack.models_bucket, folder, name=tag, version="v1"
        )

        def gateway(label: str, routeiq: dict, **env: str) -> str:
            port = free_port()
            base = {
                "ROUTEIQ_GATEWAY_PORT": str(port),
                "ROUTEIQ_GATEWAY_CONFIG_PATH": str(
                    model_file(work / f"{label}.yaml", upstream, routeiq)
                ),
                "ROUTEIQ_GATEWAY_ADMIN_KEY": "bench-admin-key-0123456",
                "ROUTEIQ_GATEWAY_DECISION_KEY": "bench-decision-key-0123",
                "ROUTEIQ_GATEWAY_USER_SALT": "bench",
                "ROUTEIQ_GATEWAY_VERIFY_KEY": public,
                "ROUTEIQ_GATEWAY_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
                "ROUTEIQ_GATEWAY_REGISTRY__URL": stack.registry.url,
                "ROUTEIQ_GATEWAY_S3__ENDPOINT": stack.s3.endpoint,
                "ROUTEIQ_GATEWAY_REDIS__URL": stack.redis.url,
                "ROUTEIQ_GATEWAY_DECISIONS_TOPIC": names["decisions"],
                "ROUTEIQ_GATEWAY_FEEDBACK_TOPIC": names["feedback"],
                "ROUTEIQ_GATEWAY_ANNOUNCEMENTS_TOPIC": names["announcements"],
                "ROUTEIQ_GATEWAY_SPOOL_DIR": str(work / label / "spool"),
                "ROUTEIQ_GATEWAY_MODEL_CACHE_DIR": str(work / label / "cache"),
                "ROUTEIQ_GATEWAY_AUDIT_LOG": str(work / label / "audit.jsonl"),
                "ROUTEIQ_UPSTREAM_API_KEY": "offline",
                "ROUTEIQ_GATEWAY_FEATURES_DIR": str(stack.state / "features" / "static"),
                **env,
            }
            proc = ServiceProcess(
                "routeiq_gateway",
                base,
                work / f"{label}.log",
                health_url=f"http://127.0.0.1:{port}/health/ready",
            ).start()
            processes.append(proc)
            assert proc.proc is not None
            pids[f"http://127.0.0.1:{port}"] = proc.proc.pid
            return f"http://127.0.0.1:{port}"

        pids: dict[str, int] = {}
        learned = {"router_name": tag, "default_strategy": "learned", "epsilon": 0.05}
        url_a = gateway("a", learned, ROUTEIQ_GATEWAY_EMBEDDING_CACHE_SIZE="0")
        url_a_traced = gateway(
            "a-traced",
            learned,
            ROUTEIQ_GATEWAY_EMBEDDING_CACHE_SIZE="0",
            ROUTEIQ_GATEWAY_TELEMETRY__OTLP_ENDPOINT=stack.otlp_http_url,
            ROUTEIQ_GATEWAY_QUERY_KEY="bench-query-key-0123456789abcdef",
        )
        url_a_traced_large = gateway(
            "a-traced-large",
            learned,
            ROUTEIQ_GATEWAY_EMBEDDING_CACHE_SIZE="0",
            ROUTEIQ_GATEWAY_TELEMETRY__OTLP_ENDPOINT=stack.otlp_http_url,
            ROUTEIQ_GATEWAY_TELEMETRY__EXPORT_BATCH_SIZE="512",
            ROUTEIQ_GATEWAY_QUERY_KEY="bench-query-key-0123456789abcdef",
        )
        url_a_cached = gateway("a-cached", learned)
        url_b = gateway(
            "b",
            {"default_strategy": "random"},
            ROUTEIQ_GATEWAY_TELEMETRY_ENABLED="false",
            ROUTEIQ_GATEWAY_INCLUDE_EMBEDDING="false",
            ROUTEIQ_GATEWAY_SYNC_ENABLED="false",
        )
        serde = AvroSerde.for_topic(
            MODEL_ANNOUNCEMENT, names["announcements"], resolver=RegistryResolver(registry)
        )
        announce(
            make_producer(stack.kafka, client_id="bench"),
            serde,
            names["announcements"],
            name=tag,
            version="v1",
            location=location,
            folder=folder,
        )
        for url in (url_a, url_a_traced, url_a_traced_large, url_a_cached):
            wait_until(
                lambda u=url: (
                    httpx.get(f"{u}/health/ready").json()["sync"]["active_version"] == "v1"
                ),
                timeout=120,
                what="the bundle to be active",
            )

        lp_port = free_port()
        lp_config = model_file(work / "litellm.yaml", upstream, None)
        processes.append(
            ServiceProcess(
                "litellm",
                {"ROUTEIQ_UPSTREAM_API_KEY": "offline"},
                work / "litellm.log",
                command=[
                    str(Path(sys.executable).parent / "litellm"),
                    "--config",
                    str(lp_config),
                    "--port",
                    str(lp_port),
                    "--host",
                    "127.0.0.1",
                    "--num_workers",
                    "1",
                ],
                health_url=f"http://127.0.0.1:{lp_port}/health/liveliness",
            ).start()
        )
        url_c = f"http://127.0.0.1:{lp_port}"
        assert processes[-1].proc is not None
        pids[url_c] = processes[-1].proc.pid

        configs = [
            ("a", url_a, "auto", "RouteIQ learned over 9, telemetry, no cache"),
            ("a*", url_a_traced, "auto", "a + spans to Jaeger + query key"),
            ("a*L", url_a_traced_large, "auto", "a* exporting 512 spans a batch"),
            ("a+", url_a_cached, "auto", "RouteIQ learned over 9, telemetry, cache"),
            ("b", url_b, "auto", "RouteIQ random, telemetry off"),
            ("c", url_c, "llama-3.1-nemotron-51b-instruct", "LiteLLM proxy"),
        ]
        prompts = test.prompts
        # Warm-up: imports, connection pools, the upstream's and the cache's first touches.
        for _, url, model, _ in configs:
            asyncio.run(drive(url, model, prompts[:40], args.concurrency))
        results: dict[str, list[dict[str, float]]] = {c[0]: [] for c in configs}
        for rnd in range(args.rounds):
            order = configs[rnd % len(configs) :] + configs[: rnd % len(configs)]
            for label, url, model, _ in order:
                # Cold prompts for a: a different slice each round; a+ repeats the first one.
                offset = 0 if label == "a+" else (rnd * args.requests) % max(1, len(prompts))
                batch = [prompts[(offset + i) % len(prompts)] for i in range(args.requests)]
                cpu_before = cpu_seconds(pids[url])
                result = asyncio.run(drive(url, model, batch, args.concurrency))
                result["cpu_ms"] = (cpu_seconds(pids[url]) - cpu_before) * 1000 / len(batch)
                results[label].append(result)

        # -- the routing decision alone, in-process, with the same bundle and strategy
        spec = load_model_file(work / "a.yaml")
        options = [
            ModelOption(
                g,
                input_price=spec.prices(g)[0],
                output_price=spec.prices(g)[1],
                quality_rank=spec.routeiq.candidates[g].quality_rank,
                expected_output_tokens=spec.routeiq.candidates[g].expected_output_tokens,
            )
            for g in spec.candidate_groups
        ]
        learned_params = next(s.params for s in spec.routeiq.strategies if s.name == "learned")
        timings: dict[str, list[float]] = {}
        print("building a MiniLM-features bundle for the decision baseline...", flush=True)
        minilm_folder = llmrouter_bundle(
            work / "bundle-minilm",
            name=tag,
            version="v1-minilm",
            signer=signer,
            featurizer=minilm_pipeline(),
            cache_dir=stack.state / "eval-cache",
        )
        from threadpoolctl import threadpool_limits

        # As in the gateway process: BLAS on one thread (routeiq_gateway.__main__).
        blas = threadpool_limits(1)
        for label, path in (("default", folder), ("minilm", minilm_folder)):
            loaded = load_bundle(path, verifier_from("ed25519", public))
            holder = BundleHolder()
            holder.swap(loaded, at=time.time())
            registry_ = StrategyRegistry(holder=holder)
            registry_.register("strongest", "strongest")
            registry_.register("learned", "learned", dict(learned_params))
            engine = RoutingEngine(registry_, RoutingConfig(default="learned", epsilon=0.05))
            pipeline = loaded.featurizer
            timings[label] = []
            for prompt in (prompts * 2)[:600]:
                started = time.perf_counter()
                # No cache: the bundle's pipeline computes every request's vector.
                request = RouteInput(
                    prompt,
                    embed=lambda t, p=pipeline: p.encode([t])[0],
                    features_id=pipeline.id,
                )
                engine.route(request, options)
                timings[label].append((time.perf_counter() - started) * 1000)
        blas.restore_original_limits()
    finally:
        for proc in reversed(processes):
            proc.stop()

    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    print("\nRouteIQ gateway benchmark")
    print(
        f"  python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"offline upstream at 0 ms; concurrency {args.concurrency}; {args.requests} requests "
        f"× {args.rounds} interleaved rounds (medians); dcrouter_test prompts, 9 candidates"
    )
    print(
        f"\n{'config':<4} {'what':<48} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'CPU ms/req':>11} {'errors':>7}"
    )
    print("-" * 109)
    for label, _, _, what in configs:
        print(
            f"{label:<4} {what:<48} {med(label, 'rps'):>8.1f} {med(label, 'p50'):>8.1f} "
            f"{med(label, 'p95'):>8.1f} {med(label, 'p99'):>8.1f} {med(label, 'cpu_ms'):>11.2f} "
            f"{sum(r['errors'] for r in results[label]):>7.0f}"
        )
    print("\nper round (req/s; CPU ms per request; p99 ms), in the order run")
    for label, _, _, _ in configs:
        rounds = "  ".join(
            f"{r['rps']:.0f}; {r['cpu_ms']:.2f}; {r['p99']:.0f}" for r in results[label]
        )
        print(f"  {label:<4} {rounds}")
    # Each round's ratio against the other config's same round: the VM's drift between
    # rounds (other tenants, the page cache) cancels out of it.
    print("\npaired per-round ratios, median (p99; CPU per request)")
    for x, y in (("a*", "a"), ("a*L", "a"), ("a*", "a*L")):
        p99s = [r["p99"] / q["p99"] for r, q in zip(results[x], results[y], strict=True)]
        cpus = [r["cpu_ms"] / q["cpu_ms"] for r, q in zip(results[x], results[y], strict=True)]
        print(
            f"  {x}/{y}: p99 {statistics.median(p99s):.2f}x ({', '.join(f'{v:.2f}' for v in p99s)})"
            f"   CPU/req {statistics.median(cpus):.2f}x"
        )
    print("\nratios (throughput; p99 latency; server CPU per request)")
    pairs = [("a", "c"), ("a*", "c"), ("a+", "c"), ("a", "b"), ("b", "c")]
    for x, y in [*pairs, ("a*", "a"), ("a*L", "a"), ("a*", "a*L")]:
        print(
            f"  {x}/{y}: req/s {med(x, 'rps') / med(y, 'rps'):.2f}x   "
            f"p99 {med(x, 'p99') / med(y, 'p99'):.2f}x   "
            f"CPU/req {med(x, 'cpu_ms') / med(y, 'cpu_ms'):.2f}x"
        )
    print(
        "\nrouting decision alone (features + kNN + cost-aware policy over 9 candidates, "
        "uncached), in-process, 600 prompts"
    )
    for label in timings:
        what = features.id if label == "default" else "MiniLM (the previous default)"
        print(
            f"  {what:<44} p50 {percentile(timings[label], 50):7.2f} ms   "
            f"p99 {percentile(timings[label], 99):7.2f} ms"
        )


if __name__ == "__main__":
    main()
