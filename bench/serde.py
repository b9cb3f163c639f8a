"""Serde benchmark: RouteIQ's Avro serde against plain fastavro, in the same run.

Measures, for RouterDecision events with and without a 384-d query embedding:
  1. encode only      — fastavro.schemaless_writer (baseline) vs AvroSerde.encode
                        (Confluent wire format, schema id resolved through the registry, cached);
  2. encode + produce — each of the above followed by Producer.produce to a real Kafka topic,
                        until every message is acknowledged (flush), idempotent acks=all.
Each measurement is repeated, interleaved with its baseline (alternating which goes first),
and the median is reported with the ours/baseline ratio.

Run: `make bench` (starts the stack if needed) or `uv run python bench/serde.py`.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import ROUTER_DECISIONS
from routeiq.kafka import apply_topics, make_admin, make_producer
from routeiq_cli.stack.settings import StackSettings

MODELS = [("gpt-4-1106-preview", "openai"), ("mixtral-8x7b", "together"), ("llama-3-70b", "groq")]


def make_events(n: int, *, embedding_dim: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for _ in range(n):
        candidates = [
            {
                "model_name": m,
                "provider": p,
                "score": rng.random(),
                "available": True,
                "propensity": rng.random(),
            }
            for m, p in MODELS
        ]
        tokens_in, tokens_out = rng.randint(20, 2000), rng.randint(1, 800)
        events.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "trace_id": f"{rng.getrandbits(128):032x}",
                "span_id": f"{rng.getrandbits(64):016x}",
                "timestamp": 1_763_000_000_000 + rng.randint(0, 10**9),
                "input": {
                    "query_length": rng.randint(10, 5000),
                    "requested_model": "routeiq-auto",
                    "user_id": f"{rng.getrandbits(256):064x}",
                    "team_id": "team-a",
                },
                "strategy": {"name": "knn", "version": "1"},
                "candidate_deployments": candidates,
                "selected_deployment": candidates[0]["model_name"],
                "selection_reason": "argmax",
                "timings": {
                    "total_ms": rng.uniform(50, 3000),
                    "strategy_ms": rng.uniform(1, 10),
                    "embedding_ms": rng.uniform(1, 8),
                },
                "outcome": {
                    "status": "SUCCESS",
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                    "error_type": None,
                    "cost_usd": rng.uniform(0, 0.05),
                    "upstream_latency_ms": rng.uniform(50, 3000),
                },
                "fallback": {"used": False, "attempted_deployments": [], "reason": None},
                "router_version": "v12",
                "exploration": rng.random() < 0.05,
                "ab_arm": "A",
                "query_embedding": [rng.uniform(-1, 1) for _ in range(embedding_dim)]
                if embedding_dim
                else None,
                "embedding_model": "all-MiniLM-L6-v2" if embedding_dim else None,
                "domain": None,
            }
        )
    return events


def paired_medians(
    baseline: Callable[[], int], ours: Callable[[], int], repeats: int
) -> tuple[float, float, int, int]:
    """Median seconds of each, runs interleaved and alternating which goes first.

    Interleaving keeps slow drifts (broker log flushes, GC, page cache) from favouring the
    side that happens to run first. Returns (baseline s, ours s, baseline bytes, ours bytes).
    """
    times: dict[str, list[float]] = {"base": [], "ours": []}
    sizes = {"base": 0, "ours": 0}
    runs = {"base": baseline, "ours": ours}
    for i in range(repeats):
        order = ("base", "ours") if i % 2 == 0 else ("ours", "base")
        for name in order:
            start = time.perf_counter()
            sizes[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
    return (
        statistics.median(times["base"]),
        statistics.median(times["ours"]),
        sizes["base"],
        sizes["ours"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    settings = StackSettings.load()
    registry = SchemaRegistryClient(settings.registry.client_config())
    spec = ROUTER_DECISIONS.with_name(f"bench.serde-{uuid.uuid4().hex[:8]}")
    admin = make_admin(settings.kafka)
    apply_topics(admin, [spec])
    schema_text = ROUTER_DECISION.working_text()
    registry.register_schema(spec.value_subject, Schema(schema_text, "AVRO"))
    serde = AvroSerde.for_contract(
        ROUTER_DECISION, subject=spec.value_subject, resolver=RegistryResolver(registry)
    )
    parsed = fastavro.parse_schema(json.loads(schema_text))
    producer: Producer = make_producer(
        settings.kafka,
        client_id="bench-serde",
        overrides={
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        },
    )

    def plain_encode(record: dict) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, record)
        return buffer.getvalue()

    def produce_all(encode: Callable[[dict], bytes], events: list[dict]) -> int:
        size = 0
        for event in events:
            value = encode(event)
            size += len(value)
            while True:
                try:
                    producer.produce(spec.name, key=event["event_id"], value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120) != 0:
            raise RuntimeError("messages left unacknowledged")
        return size

    def encode_all(encode: Callable[[dict], bytes], events: list[dict]) -> int:
        return sum(len(encode(e)) for e in events)

    print("RouteIQ serde benchmark")
    print(
        f"  python {platform.python_version()}, fastavro {fastavro.__version__}, "
        f"{platform.machine()}, events={args.events}, repeats={args.repeats} (median)"
    )
    print(
        f"  kafka {settings.kafka.bootstrap_servers}, topic {spec.name} "
        f"({spec.partitions} partitions), acks=all, idempotent, lz4"
    )
    serde.encode(make_events(1, embedding_dim=0)[0])  # resolve the schema id once
    print(f"  schema id {serde.schema_id} from {settings.registry.url}\n")

    header = (
        f"{'payload':<18}{'stage':<18}{'baseline ev/s':>15}{'routeiq ev/s':>15}"
        f"{'ratio':>8}{'bytes/ev':>10}"
    )
    print(header)
    print("-" * len(header))
    try:
        for label, dim in (("no embedding", 0), ("384-d embedding", 384)):
            events = make_events(args.events, embedding_dim=dim)
            for stage, run in (("encode", encode_all), ("encode+produce", produce_all)):
                base_t, ours_t, base_bytes, ours_bytes = paired_medians(
                    lambda r=run, ev=events: r(plain_encode, ev),
                    lambda r=run, ev=events: r(serde.encode, ev),
                    args.repeats,
                )
                base_rate, ours_rate = len(events) / base_t, len(events) / ours_t
                print(
                    f"{label:<18}{stage:<18}{base_rate:>15,.0f}{ours_rate:>15,.0f}"
                    f"{ours_rate / base_rate:>8.2f}{ours_bytes / len(events):>10.0f}"
                )
                assert ours_bytes - base_bytes == 5 * len(events)  # exactly the wire header
    finally:
        for future in admin.delete_topics([spec.name], operation_timeout=30).values():
            future.result()


if __name__ == "__main__":
    main()
