"""Labeler benchmark: the Faust worker against a plain confluent-kafka loop, in the same run.

Both consume the same pre-encoded stream (Avro RouterDecision events with a 384-d embedding,
Feedback for every decision, a shadow grade for a fifth of them) from their own topics
(6 partitions, like production), and both do the same work with the same code: decode,
validate, join by decision id, label, window by event time, write Parquet shards to S3.

  (a) labeler  — `python -m routeiq_labeler`: Faust agent, state in changelog-backed tables
                 (crash-safe, exactly one row per decision across restarts);
  (b) baseline — one process running a confluent-kafka consumer loop over the same core
                 (`LabelerState` on plain dicts, `ShardSink`), offsets committed after writes;
                 no changelog, so it is not crash-safe: it is the floor Faust is paid against.

Each side is started and ready before the clock starts; the clock runs from the first
produce to the moment S3 holds a row for every decision. Reported: decisions/s and records/s
(decisions + feedback) per worker, and the labeler/baseline ratio.

Run: `make bench-labeler` or `uv run python bench/labeler.py [--decisions 10000]` (stack up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from routeiq.contracts.catalog import FEEDBACK, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.kafka import apply_topics, make_admin, make_consumer, make_producer
from routeiq.settings import KafkaSettings, RegistrySettings, S3Settings
from routeiq.shards import list_manifests, read_manifest
from routeiq.storage import ArtifactStore, make_minio
from routeiq_cli.stack.settings import StackSettings

REPO = Path(__file__).resolve().parents[1]
# The labeler's environment is built by the integration tests' helper (one definition).
sys.path.insert(0, str(REPO / "tests"))
MODELS = ("gpt-4-1106-preview", "mixtral-8x7b", "llama-3-70b")
WINDOW_S = 10
LATENESS_S = 1
IDLE_S = 1
TICK_S = 0.5


# ---------------------------------------------------------------------------------- stream


def make_stream(n: int, *, seed: int = 11) -> list[tuple[str, dict[str, Any]]]:
    """Decisions over a minute of event time (ten minutes ago), each followed by its feedback."""
    rng = random.Random(seed)
    start = (time.time_ns() // 1_000_000) - 600_000
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        decision_id = str(uuid.UUID(int=rng.getrandbits(128)))
        served = rng.randrange(len(MODELS))
        props = [0.05] * len(MODELS)
        props[served] = 1 - 0.05 * (len(MODELS) - 1)
        out.append(
            (
                "decisions",
                {
                    "event_id": decision_id,
                    "trace_id": f"{rng.getrandbits(128):032x}",
                    "span_id": f"{rng.getrandbits(64):016x}",
                    "timestamp": start + i * 60_000 // n,
                    "input": {
                        "query_length": rng.randint(10, 4000),
                        "requested_model": "router-auto",
                        "user_id": None,
                        "team_id": "bench",
                    },
                    "strategy": {"name": "knn", "version": "1"},
                    "candidate_deployments": [
                        {
                            "model_name": m,
                            "provider": "offline",
                            "score": rng.random(),
                            "available": True,
                            "propensity": p,
                        }
                        for m, p in zip(MODELS, props, strict=True)
                    ],
                    "selected_deployment": MODELS[served],
                    "selection_reason": "argmax",
                    "timings": {"total_ms": 800.0, "strategy_ms": 4.0, "embedding_ms": 3.0},
                    "outcome": {
                        "status": "SUCCESS" if rng.random() > 0.05 else "ERROR",
                        "input_tokens": rng.randint(20, 2000),
                        "output_tokens": rng.randint(1, 800),
                        "total_tokens": 0,
                        "error_type": None,
                        "cost_usd": rng.random() / 100,
                        "upstream_latency_ms": rng.uniform(100, 4000),
                    },
                    "fallback": {"used": False, "attempted_deployments": [], "reason": None},
                    "router_version": "bench",
                    "exploration": rng.random() < 0.05,
                    "ab_arm": None,
                    "query_embedding": [rng.uniform(-0.2, 0.2) for _ in range(384)],
                    "embedding_model": "all-MiniLM-L6-v2",
                    "domain": None,
                },
            )
        )
        graded = [None] + ([MODELS[(served + 1) % len(MODELS)]] if rng.random() < 0.2 else [])
        for candidate in graded:
            out.append(
                (
                    "feedback",
                    {
                        "feedback_id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "decision_id": decision_id,
                        "score": rng.random(),
                        "source": "oracle",
                        "created_at": start,
                        "candidate": candidate,
                        "judge_model": None,
                        "cost_usd": None,
                        "latency_ms": None,
                        "trace_id": None,
                    },
                )
            )
    return out


# ---------------------------------------------------------------------------------- baseline


def baseline_worker(config: dict[str, Any]) -> None:
    """The plain loop: confluent-kafka consumer → the labeler's core → S3; until SIGTERM."""
    from routeiq.labeling import LabelPolicy, decision_facts, feedback_facts
    from routeiq_labeler.core.state import LabelerState
    from routeiq_labeler.core.windows import WindowSpec
    from routeiq_labeler.sink import ShardSink

    kafka = KafkaSettings(bootstrap_servers=config["bootstrap"], session_timeout_ms=6000)
    registry = SchemaRegistryClient(RegistrySettings(url=config["registry"]).client_config())
    resolver = RegistryResolver(registry)
    decisions_topic, feedback_topic = config["decisions"], config["feedback"]
    serdes = {
        decisions_topic: AvroSerde.for_topic(ROUTER_DECISION, decisions_topic, resolver=resolver),
        feedback_topic: AvroSerde.for_topic(FEEDBACK, feedback_topic, resolver=resolver),
    }
    policy = LabelPolicy(quality_source="feedback_or_outcome", ttl_ms=2000)
    state = LabelerState(
        decisions={},
        feedback={},
        meta={},
        policy=policy,
        windows=WindowSpec(WINDOW_S * 1000, LATENESS_S * 1000),
    )
    s3 = S3Settings(**config["s3"])
    sink = ShardSink(
        store=ArtifactStore(make_minio(s3)),
        bucket=config["bucket"],
        policy=policy,
        clock_ms=lambda: time.time_ns() // 1_000_000,
    )
    consumer = make_consumer(
        kafka, group_id=f"bench-baseline-{uuid.uuid4().hex[:8]}", client_id="bench-baseline"
    )
    consumer.subscribe([decisions_topic, feedback_topic])
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    last_event: dict[int, float] = {}
    consumed_since_commit = False
    partitions: set[int] = set()
    next_tick = time.monotonic()
    while not stop:
        batch = consumer.consume(num_messages=500, timeout=0.1)
        now_ms = time.time_ns() // 1_000_000
        for msg in batch:
            if msg.error() is not None:
                continue
            consumed_since_commit = True
            p = msg.partition()
            if msg.topic() == decisions_topic:
                last_event[p] = time.monotonic()
                facts = decision_facts(
                    serdes[decisions_topic].decode(msg.value()),
                    key=msg.key(),
                    now_ms=now_ms,
                    max_future_skew_ms=300_000,
                )
                state.on_decision(p, facts, now_ms=now_ms)
            else:
                fb = feedback_facts(serdes[feedback_topic].decode(msg.value()), key=msg.key())
                state.on_feedback(p, fb, now_ms=now_ms)
        if not partitions and consumer.assignment():
            partitions = {tp.partition for tp in consumer.assignment()}
            Path(config["ready_file"]).write_text("ready")
        if time.monotonic() >= next_tick:
            next_tick = time.monotonic() + TICK_S
            now_ms = time.time_ns() // 1_000_000
            wrote = False
            for p in sorted(partitions):
                if time.monotonic() - last_event.get(p, time.monotonic()) >= IDLE_S:
                    state.close_idle(p, now_ms)
                for plan in state.plan(p, now_ms):
                    state.complete(plan, sink.write(plan), now_ms=now_ms)
                    wrote = True
            if wrote and consumed_since_commit:
                consumer.commit(asynchronous=False)
                consumed_since_commit = False
    consumer.close()


# ---------------------------------------------------------------------------------- harness


def rows_written(store: ArtifactStore, bucket: str) -> int:
    return sum(read_manifest(store, bucket, k).rows for k in list_manifests(store, bucket))


def wait_rows(store: ArtifactStore, bucket: str, n: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rows_written(store, bucket) >= n:
            return time.perf_counter()
        time.sleep(0.2)
    raise SystemExit(f"timed out: {rows_written(store, bucket)}/{n} rows in s3://{bucket}")


def produce(stack: StackSettings, topics: dict[str, str], encoded) -> None:
    producer = make_producer(stack.kafka, client_id="bench-labeler")
    for kind, key, value in encoded:
        while True:
            try:
                producer.produce(topics[kind], key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0


def prepare(stack: StackSettings, registry: SchemaRegistryClient, tag: str) -> dict[str, str]:
    from integration.labeler.helpers import LABELER_TOPICS

    admin = make_admin(stack.kafka)
    names = {}
    for kind, template, contract in LABELER_TOPICS:
        spec = template.with_name(f"bench-{tag}.{template.name}")
        apply_topics(admin, [spec])
        registry.register_schema(spec.value_subject, Schema(contract.working_text(), "AVRO"))
        names[kind] = spec.name
    return names


def cleanup(stack: StackSettings, topics: list[str], buckets: list[str]) -> None:
    admin = make_admin(stack.kafka)
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for t in topics if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
    client = make_minio(stack.s3)
    for bucket in buckets:
        for obj in client.list_objects(bucket, recursive=True):
            client.remove_object(bucket, obj.object_name)
        client.remove_bucket(bucket)


@dataclass(frozen=True)
class Trial:
    """One timed run: the encoded stream to produce, and the topics and bucket it goes through."""

    stack: Any
    topics: dict[str, str]
    bucket: str
    encoded: list[tuple[str, bytes, bytes]]
    n: int  # decisions in the stream
    timeout: float


def _measure(proc, log, *, ready, what: str, trial: Trial) -> float:
    """Wait until ``proc`` is ``ready()``, produce the decisions and time how long until
    every row is in a shard (decisions per second); ``proc`` is stopped with SIGTERM after."""
    stack, n = trial.stack, trial.n
    try:
        deadline = time.monotonic() + 120
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not become ready; log: {log.name}")
            time.sleep(0.3)
        started = time.perf_counter()
        produce(stack, trial.topics, trial.encoded)
        store = ArtifactStore(make_minio(stack.s3))
        return n / (wait_rows(store, trial.bucket, n, trial.timeout) - started)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()


def run_labeler(trial: Trial, workdir: Path) -> float:
    stack, topics, bucket = trial.stack, trial.topics, trial.bucket
    from integration.labeler.helpers import labeler_env

    app_id = f"bench-labeler-{uuid.uuid4().hex[:8]}"
    port = 6400 + random.randrange(500)
    env = labeler_env(
        stack,
        app_id=app_id,
        bucket=bucket,
        port=port,
        data_dir=workdir / app_id,
        decisions_topic=topics["decisions"],
        feedback_topic=topics["feedback"],
        retrain_topic=topics["retrain"],
        deadletter_topic=topics["deadletter"],
        window_size_s=WINDOW_S,
        allowed_lateness_s=LATENESS_S,
        feedback_ttl_s=2,
        idle_timeout_s=IDLE_S,
        tick_interval_s=TICK_S,
        retrain_threshold=0,
        retrain_interval_s=0,
        log_level="warning",
    )

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    log = (workdir / f"{app_id}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "routeiq_labeler"], env=env, stdout=log, stderr=log, cwd=REPO
    )
    try:
        return _measure(proc, log, ready=ready, what="labeler", trial=trial)
    finally:
        admin = make_admin(stack.kafka)
        changelogs = [f"{app_id}-{t}-changelog" for t in ("decisions", "feedback", "meta")]
        existing = set(admin.list_topics(timeout=10).topics)
        doomed = [t for t in changelogs if t in existing]
        if doomed:
            for future in admin.delete_topics(doomed, operation_timeout=30).values():
                future.result()


def run_baseline(trial: Trial, workdir: Path) -> float:
    stack, topics = trial.stack, trial.topics
    ready = workdir / f"baseline-{uuid.uuid4().hex[:8]}.ready"
    config = {
        "bootstrap": stack.kafka.bootstrap_servers,
        "registry": stack.registry.url,
        "decisions": topics["decisions"],
        "feedback": topics["feedback"],
        "bucket": trial.bucket,
        "ready_file": str(ready),
        "s3": {
            "endpoint": stack.s3.endpoint,
            "access_key": stack.s3.access_key.get_secret_value(),
            "secret_key": stack.s3.secret_key.get_secret_value(),
        },
    }
    log = (workdir / "baseline.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--baseline-worker", json.dumps(config)],
        stdout=log,
        stderr=log,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return _measure(proc, log, ready=ready.exists, what="baseline", trial=trial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2, help="Alternating runs per side.")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--baseline-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_worker:
        baseline_worker(json.loads(args.baseline_worker))
        return

    stack = StackSettings.load()
    registry = SchemaRegistryClient(stack.registry.client_config())
    resolver = RegistryResolver(registry)
    tag = uuid.uuid4().hex[:8]
    store = ArtifactStore(make_minio(stack.s3))
    stream = make_stream(args.decisions)
    n = args.decisions
    records = len(stream)
    print(
        f"labeler benchmark — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"  stream: {n} decisions (384-d embeddings) + {records - n} feedback records, "
        f"6 partitions; windows {WINDOW_S}s, lateness {LATENESS_S}s, idle close {IDLE_S}s"
    )
    print(
        "  timed: first produce → every decision's row in S3 (one worker each); "
        f"median of {args.rounds} alternating rounds"
    )
    results: dict[str, list[float]] = {"labeler": [], "baseline": []}
    created_topics: list[str] = []
    buckets: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.rounds):
                # Alternate who goes first: the machine's load drifts during a run.
                order = ("baseline", "labeler") if round_ % 2 == 0 else ("labeler", "baseline")
                for side in order:
                    topics = prepare(stack, registry, f"{tag}-{round_}-{side[0]}")
                    created_topics += topics.values()
                    bucket = f"bench-{tag}-{round_}-{side}"
                    store.ensure_bucket(bucket)
                    buckets.append(bucket)
                    encoders = {
                        kind: AvroSerde.for_topic(contract, topics[kind], resolver=resolver)
                        for kind, contract in (
                            ("decisions", ROUTER_DECISION),
                            ("feedback", FEEDBACK),
                        )
                    }
                    key = {"decisions": "event_id", "feedback": "decision_id"}
                    encoded = [
                        (kind, rec[key[kind]].encode(), encoders[kind].encode(rec))
                        for kind, rec in stream
                    ]
                    run = run_labeler if side == "labeler" else run_baseline
                    trial = Trial(stack, topics, bucket, encoded, n, args.timeout)
                    rate = run(trial, Path(tmp))
                    results[side].append(rate)
                    print(f"  round {round_ + 1} {side:<9} {rate:8.0f} decisions/s", flush=True)
    finally:
        cleanup(stack, created_topics, buckets)

    medians = {side: statistics.median(rates) for side, rates in results.items()}
    for side in ("labeler", "baseline"):
        rate = medians[side]
        print(f"  {side:<9} {rate:9.0f} decisions/s  {rate * records / n:9.0f} records/s")
    print(f"  ratio labeler/baseline: {medians['labeler'] / medians['baseline']:.2f}")


if __name__ == "__main__":
    main()
