"""Shadow-sampling benchmark: what asking the other model and the blind judge for 10 % of the
requests costs the clients of a gateway under load, and whether the daily budget holds.

Setup: the offline upstream (recorded GSM8K answers, ``--upstream-ms`` per call: 0 by default,
so the gateway is CPU-bound, the worst case for work running beside serving) and three gateways
side by side, the same but for shadow sampling: ``base`` (``shadow_fraction`` 0), ``shadow``
(0.1, jobs in the low-priority shadow worker process: the default) and ``inline`` (0.1, jobs on
the gateway's event loop, ``shadow_process=false``). Each has the local stack's model file
(threshold strategy over GPT-4 and Mixtral) plus the judge group ``routeiq-judge`` (the
upstream's judge, priced as GPT-4), telemetry on (private decisions and feedback topics of the
local Kafka), the oracle pair set (Mixtral cheap, GPT-4 strong), its own Redis key prefix.
One client drives each gateway at a fixed concurrency with GSM8K prompts as a team named for
the run, in interleaved rounds (the arms' order rotates each round). Before every round the
shadow gateways' queues are waited empty, so a round never carries the shadow work of the one
before it.

Measured: client latency p50/p99 per arm (medians over rounds), the p99 ratios against the
baseline, each gateway's CPU per request (its shadow worker's apart), failed requests (not a
200, or no answer at all), the shadow gateway's shadow fates from its ``/metrics`` and the
verdicts (``Feedback``) on its topic.
Then the budget phase: a third gateway with a tiny ``shadow_daily_usd`` takes the same load in
two halves; the team's spend in Redis is read after each, against the budget and against what
``routeiq_gateway.shadow`` guarantees (a job reserves its estimate first and is skipped when the
day's total would pass the budget; the job in progress, one per replica, settles to its real
cost afterwards, which may be more than the estimate).

Run: `make bench-shadow` or `uv run python bench/shadow.py` (the stack must be up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

JUDGE = "routeiq-judge"
STRONG, CHEAP = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
# Every way a shadow job ends (``routeiq_gateway.shadow``); "queued" is how they start.
ENDED = ("judged", "unjudged", "over_budget", "budget_unavailable", "shadow_failed", "error")


@dataclass
class Arm:
    """One gateway under test: where it listens, its process, what it is."""

    label: str
    url: str
    pid: int
    upstream_pid: int
    fraction: float
    prefix: str
    feedback_topic: str


@dataclass
class Round:
    latencies_ms: list[float]
    failed: int
    rps: float
    # CPU per request (user + system, all threads) of the gateway, its shadow worker process,
    # the upstream and the client (this process): on a small machine they share the cores.
    cpu_ms: dict[str, float]
    ended: int = 0  # shadow jobs that ended while the round ran


async def load(url: str, prompts: list[str], *, concurrency: int, team: str) -> tuple[Any, ...]:
    """Each prompt once, ``concurrency`` in flight: (latencies in ms, failures, seconds)."""
    slots = asyncio.Semaphore(concurrency)
    pool = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=pool, headers={"x-routeiq-team": team}
    ) as http:

        async def ask(prompt: str) -> tuple[float, bool]:
            async with slots:
                began = time.perf_counter()
                body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
                try:
                    ok = (await http.post("/v1/chat/completions", json=body)).status_code == 200
                except httpx.HTTPError:  # no answer at all is a failed request too
                    ok = False
                return (time.perf_counter() - began) * 1000, ok

        started = time.perf_counter()
        answers = await asyncio.gather(*(ask(p) for p in prompts))
        seconds = time.perf_counter() - started
    return [ms for ms, _ in answers], sum(1 for _, ok in answers if not ok), seconds


def cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        return float(sum(process.cpu_times()[:2]))
    except psutil.NoSuchProcess:
        return 0.0


def drive(arm: Arm, prompts: list[str], *, concurrency: int, team: str) -> Round:
    gateway = psutil.Process(arm.pid)
    procs = {
        "gateway": [gateway],
        # The shadow worker process, when the gateway runs one (started by its first job).
        "worker": gateway.children(recursive=True),
        "upstream": [psutil.Process(arm.upstream_pid)],
        "client": [psutil.Process()],
    }
    before = {name: sum(cpu_s(p) for p in ps) for name, ps in procs.items()}
    latencies, failed, seconds = asyncio.run(
        load(arm.url, prompts, concurrency=concurrency, team=team)
    )
    cpu_ms = {
        name: (sum(cpu_s(p) for p in ps) - before[name]) * 1000 / len(prompts)
        for name, ps in procs.items()
    }
    return Round(latencies, failed, len(prompts) / seconds, cpu_ms)


def fates(arm: Arm) -> Counter[str]:
    """The gateway's ``routeiq_gateway_shadow_total`` by fate, and its judge feedback count."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Counter[str] = Counter()
    text = httpx.get(f"{arm.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "routeiq_gateway_shadow_total":
                out[sample.labels["fate"]] += int(sample.value)
            elif sample.name == "routeiq_gateway_feedback_total":
                out[f"feedback_{sample.labels['source']}"] += int(sample.value)
    return out


def settled(arm: Arm, *, timeout: float = 180.0) -> Counter[str]:
    """Wait until every job the gateway queued has ended; its fates then."""
    deadline = time.monotonic() + timeout
    while True:
        now = fates(arm)
        if sum(now[f] for f in ENDED) >= now["queued"]:
            return now
        if time.monotonic() > deadline:
            print(f"  ({arm.label}: shadow jobs still queued after {timeout:.0f} s)", flush=True)
            return now
        time.sleep(0.2)


def spend(redis: Any, prefix: str, team: str) -> float:
    """The team's shadow spend today, as the gateway keeps it in Redis."""
    value = redis.get(f"{prefix}:shadow:{team}:d:{datetime.now(UTC):%Y%m%d}")
    return float(value or 0.0)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, kind, default, what in (
        ("--requests", int, 2000, "requests per round per arm"),
        ("--rounds", int, 5, "interleaved rounds (medians reported)"),
        ("--concurrency", int, 8, "requests in flight"),
        ("--fraction", float, 0.1, "the shadow arm's shadow_fraction"),
        ("--upstream-ms", float, 0.0, "the offline upstream's latency per call"),
        ("--budget-usd", float, 0.05, "the budget phase's shadow_daily_usd"),
        ("--budget-requests", int, 600, "requests in the budget phase (two halves)"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{what} ({default})")
    return parser.parse_args()


def main() -> None:
    args = options()

    import redis
    from benchkit import bench_run, start_upstream, write_model_file
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from routeiq.contracts.catalog import FEEDBACK, ROUTER_DECISION
    from routeiq.contracts.serde import AvroSerde, RegistryResolver
    from routeiq.contracts.topics import FEEDBACK_EVENTS, ROUTER_DECISIONS
    from routeiq.kafka import apply_topics, make_admin, make_consumer, read_since
    from routeiq.routing.datasets import load_gsm8k
    from support.kafka import register_values
    from support.processes import ServiceProcess, free_port

    stack, work, tag = bench_run("shadow")
    team = f"{tag}-team"
    labels = ("base", "shadow", "inline", "budget")
    contracts = {f"{tag}.decisions": ROUTER_DECISION}
    contracts |= {f"{tag}.{x}.feedback": FEEDBACK for x in labels}
    specs = [ROUTER_DECISIONS.with_name(f"{tag}.decisions")]
    specs += [FEEDBACK_EVENTS.with_name(f"{tag}.{x}.feedback") for x in labels]
    apply_topics(make_admin(stack.kafka), specs)
    registry = SchemaRegistryClient(stack.registry.client_config())
    register_values(registry, contracts)
    processes: list[ServiceProcess] = []

    def gateway(label: str, fraction: float, **extra: str) -> Arm:
        port, prefix = free_port(), f"{tag}.{label}"
        settings = {
            "port": str(port),
            "replica_id": label,
            "config_path": str(work / "models.yaml"),
            "admin_key": "bench-admin-key-0123456",
            "decision_key": "bench-decision-key-0123",
            "user_salt": "bench",
            "kafka__bootstrap_servers": stack.kafka.bootstrap_servers,
            "registry__url": stack.registry.url,
            "redis__url": stack.redis.url,
            "decisions_topic": f"{tag}.decisions",
            "feedback_topic": f"{tag}.{label}.feedback",
            "spool_dir": str(work / label / "spool"),
            "audit_log": str(work / label / "audit.jsonl"),
            "features_dir": str(stack.state / "features" / "static"),
            "sync_enabled": "false",
            "control_enabled": "false",
            "keys_prefix": prefix,
            "shadow_fraction": str(fraction),
            "shadow_oracle_cheap": CHEAP,
            "shadow_oracle_strong": STRONG,
            **extra,
        }
        env = {"ROUTEIQ_GATEWAY_" + k.upper(): v for k, v in settings.items()}
        proc = ServiceProcess(
            "routeiq_gateway",
            {**env, "ROUTEIQ_UPSTREAM_API_KEY": "offline"},
            work / f"{label}.log",
            health_url=f"http://127.0.0.1:{port}/health/ready",
        ).start()
        processes.append(proc)
        assert proc.proc is not None
        url = f"http://127.0.0.1:{port}"
        pid = processes[0].proc.pid if processes[0].proc is not None else 0
        feedback_topic = f"{tag}.{label}.feedback"
        return Arm(label, url, proc.proc.pid, pid, fraction, prefix, feedback_topic)

    prompts = load_gsm8k().prompts
    rounds: dict[str, list[Round]] = {"base": [], "shadow": [], "inline": []}
    halves: list[dict[str, Any]] = []
    store = redis.Redis.from_url(stack.redis.url)
    try:
        # Read by the upstream's settings (every service process inherits this environment).
        os.environ["ROUTEIQ_UPSTREAM_LATENCY_MS"] = str(args.upstream_ms)
        upstream = start_upstream(work, processes)
        path = write_model_file(work, upstream, router_name=None, default_strategy="threshold")
        models = yaml.safe_load(path.read_text())
        strong = next(d for d in models["model_list"] if d["model_name"] == STRONG)
        # The judge is one more model group on the upstream, priced as GPT-4 (a strong judge).
        models["model_list"].append(
            {
                "model_name": JUDGE,
                "litellm_params": {**strong["litellm_params"], "model": f"openai/{JUDGE}"},
                "model_info": dict(strong["model_info"]),
            }
        )
        path.write_text(yaml.safe_dump(models))
        base = gateway("base", 0.0)
        shadow = gateway("shadow", args.fraction, shadow_daily_usd="1000")
        inline = gateway("inline", args.fraction, shadow_daily_usd="1000", shadow_process="false")
        arms = {"base": base, "shadow": shadow, "inline": inline}
        # Warm-up: imports, pools, LiteLLM's first calls, the shadow worker's first jobs.
        for arm in arms.values():
            drive(arm, prompts[:200], concurrency=args.concurrency, team=team)
        warm = settled(shadow)
        settled(inline)
        print(
            f"{len(prompts)} GSM8K prompts; {args.rounds} rounds × {args.requests} requests "
            f"per arm at concurrency {args.concurrency}",
            flush=True,
        )
        order = list(arms)
        for r in range(args.rounds):
            for label in order[r % 3 :] + order[: r % 3]:
                settled(shadow)
                settled(inline)
                start = (r * args.requests) % len(prompts)
                batch = [prompts[(start + i) % len(prompts)] for i in range(args.requests)]
                before = fates(shadow)
                result = drive(arms[label], batch, concurrency=args.concurrency, team=team)
                after = fates(shadow)
                # Shadow work finished inside the round (the rest runs in the wait after it).
                result.ended = sum(after[f] - before[f] for f in ENDED)
                rounds[label].append(result)
                use = ", ".join(f"{k} {v:.2f}" for k, v in result.cpu_ms.items())
                print(
                    f"  round {r + 1} {label:<6} p50 {pct(result.latencies_ms, 50):6.1f} ms  "
                    f"p99 {pct(result.latencies_ms, 99):6.1f} ms  {result.rps:6.1f} req/s  "
                    f"failed {result.failed}  shadow jobs ended {result.ended}  CPU ms/req: {use}",
                    flush=True,
                )
        loaded, untouched, inline_fates = settled(shadow), fates(base), settled(inline)
        load_spend = spend(store, shadow.prefix, team)

        # -- the budget phase: a tiny daily budget, the same share and load, in two halves
        budget = gateway("budget", args.fraction, shadow_daily_usd=str(args.budget_usd))
        size = args.budget_requests // 2
        for half in range(2):
            batch = prompts[half * size : (half + 1) * size]
            result = drive(budget, batch, concurrency=args.concurrency, team=team)
            halves.append(
                {
                    "requests": len(batch),
                    "failed": result.failed,
                    "fates": dict(settled(budget)),
                    "spend_usd": spend(store, budget.prefix, team),
                }
            )
    finally:
        # SIGTERM: each gateway drains its shadow queue and flushes its events as it stops.
        for proc in reversed(processes):
            proc.stop()

    # -- the verdicts, read back from each gateway's own feedback topic
    verdicts: dict[str, list[dict[str, Any]]] = {}
    for arm in (base, shadow, inline, budget):
        serde = AvroSerde.for_topic(
            FEEDBACK, arm.feedback_topic, resolver=RegistryResolver(registry)
        )
        reader = make_consumer(stack.kafka, group_id=f"{tag}.reader", client_id=f"{tag}.reader")
        try:
            records = read_since(reader, arm.feedback_topic, since_ms=0, timeout_s=30)
            verdicts[arm.label] = [serde.decode(m.value()) for m in records]
        finally:
            reader.close()
    final_budget_spend = spend(store, budget.prefix, team)

    def med(label: str, q: float) -> float:
        return statistics.median(pct(x.latencies_ms, q) for x in rounds[label])

    def cpu(label: str, who: str) -> float:
        return statistics.median(x.cpu_ms[who] for x in rounds[label])

    def rps(label: str) -> float:
        return statistics.median(x.rps for x in rounds[label])

    failed = {label: sum(x.failed for x in rounds[label]) for label in rounds}
    ratio_p99 = med("shadow", 99) / med("base", 99)
    ratio_p50 = med("shadow", 50) / med("base", 50)
    inline_p99 = med("inline", 99) / med("base", 99)

    def paired(label: str) -> list[float]:
        """p99 / the baseline's p99 in the same round: the machine's drift between rounds
        (other load, warm-up) cancels out of each ratio."""
        return [
            pct(x.latencies_ms, 99) / pct(b.latencies_ms, 99)
            for x, b in zip(rounds[label], rounds["base"], strict=True)
        ]

    during = {k: v - warm.get(k, 0) for k, v in loaded.items()}
    judged = [v for v in verdicts["shadow"] if v["source"] == "judge"]
    cells = Counter(v.get("oracle_cell") for v in judged)
    policies = Counter(v.get("policy") for v in judged)
    per_job = load_spend / max(loaded.get("judged", 0) + loaded.get("unjudged", 0), 1)

    print("\nRouteIQ shadow-sampling benchmark")
    print(
        f"  python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"offline upstream at {args.upstream_ms:g} ms; concurrency {args.concurrency}; "
        f"{args.requests} requests × {args.rounds} interleaved rounds per arm (medians); "
        f"GSM8K prompts; threshold over GPT-4 / Mixtral, telemetry on; judge {JUDGE}"
    )
    print(
        f"\n{'arm':<30} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}   "
        "CPU ms/req: gateway worker upstream client"
    )
    print("-" * 108)
    for label, what in (
        ("base", "shadow_fraction 0"),
        ("shadow", f"shadow_fraction {args.fraction:g}, worker"),
        ("inline", f"shadow_fraction {args.fraction:g}, inline"),
    ):
        print(
            f"{what:<30} {rps(label):>7.1f} {med(label, 50):>8.1f} {med(label, 99):>8.1f} "
            f"{failed[label]:>7}   {cpu(label, 'gateway'):>18.2f} {cpu(label, 'worker'):>6.2f} "
            f"{cpu(label, 'upstream'):>8.2f} {cpu(label, 'client'):>6.2f}"
        )
    print(
        f"\nshadow (worker process)/baseline: p99 {ratio_p99:.3f}x "
        f"({100 * (ratio_p99 - 1):+.1f} %; done when ≤ +5 %), p50 {ratio_p50:.3f}x, req/s "
        f"{rps('shadow') / rps('base'):.3f}x, gateway CPU/req "
        f"{cpu('shadow', 'gateway') / cpu('base', 'gateway'):.3f}x, upstream CPU/req "
        f"{cpu('shadow', 'upstream') / cpu('base', 'upstream'):.3f}x"
    )
    print(
        f"inline/baseline: p99 {inline_p99:.3f}x ({100 * (inline_p99 - 1):+.1f} %), p50 "
        f"{med('inline', 50) / med('base', 50):.3f}x, gateway CPU/req "
        f"{cpu('inline', 'gateway') / cpu('base', 'gateway'):.3f}x"
    )
    print("p99 ms per round, in the order run:")
    for label in rounds:
        print(f"  {label:<6} " + "  ".join(f"{pct(x.latencies_ms, 99):.1f}" for x in rounds[label]))
    print("p99 / the same round's baseline p99 (paired):")
    for label in ("shadow", "inline"):
        ratios = paired(label)
        print(
            f"  {label:<6} "
            + "  ".join(f"{r:.3f}" for r in ratios)
            + f"   median {statistics.median(ratios):.3f}x"
        )
    print(
        f"\nshadow gateway, the measured rounds ({args.rounds * args.requests} requests): "
        + ", ".join(f"{k} {during.get(k, 0):.0f}" for k in ("queued", "dropped_full", *ENDED))
    )
    inside = sum(x.ended for x in rounds["shadow"])
    print(f"  shadow jobs that ended inside the shadow rounds: {inside} (the rest after them)")
    print(
        "  inline gateway, whole run: "
        + ", ".join(f"{k} {inline_fates.get(k, 0):.0f}" for k in ("queued", "dropped_full", *ENDED))
    )
    print(
        f"  verdicts (Feedback, source judge) on its topic, warm-up included: {len(judged)} "
        f"(its counter: {loaded.get('feedback_judge', 0)}); spend ${load_spend:.4f}, "
        f"${per_job:.5f} per job that reached the judge"
    )
    print(f"  oracle cells {dict(cells)}; policies {dict(policies)}")
    print(
        f"  baseline gateway: shadow jobs queued {untouched.get('queued', 0)}, "
        f"verdicts {len(verdicts['base'])}"
    )
    print(
        f"\nbudget phase: a third gateway, shadow_daily_usd ${args.budget_usd:g}, share "
        f"{args.fraction:g}, the same load"
    )
    for n, part in enumerate(halves, 1):
        got = part["fates"]
        print(
            f"  after half {n} ({part['requests']} requests, failed {part['failed']}): "
            f"spend ${part['spend_usd']:.4f} = {part['spend_usd'] / args.budget_usd:.0%} of "
            "the budget; "
            + ", ".join(f"{k} {got.get(k, 0)}" for k in ("queued", "dropped_full", *ENDED))
        )
    print(
        f"  after its shutdown: spend ${final_budget_spend:.4f}; verdicts on its topic "
        f"{len(verdicts['budget'])}"
    )

    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / f"shadow-{time.strftime('%Y%m%dT%H%M%S')}.json"
    arms_out = {
        label: {
            "p50_ms": med(label, 50),
            "p99_ms": med(label, 99),
            "rps": rps(label),
            "failed": failed[label],
            "cpu_ms_per_request": {
                w: cpu(label, w) for w in ("gateway", "worker", "upstream", "client")
            },
            "rounds": [
                {
                    "p50_ms": pct(x.latencies_ms, 50),
                    "p99_ms": pct(x.latencies_ms, 99),
                    "rps": x.rps,
                    "failed": x.failed,
                    "shadow_jobs_ended": x.ended,
                    "cpu_ms": x.cpu_ms,
                }
                for x in rounds[label]
            ],
        }
        for label in rounds
    }
    summary = {
        "tag": tag,
        "args": vars(args),
        "cpus": os.cpu_count(),
        "arms": arms_out,
        "p99_ratio": ratio_p99,
        "p50_ratio": ratio_p50,
        "inline_p99_ratio": inline_p99,
        "paired_p99_ratios": {label: paired(label) for label in ("shadow", "inline")},
        "inline_fates_whole_run": dict(inline_fates),
        "shadow_fates_measured_rounds": during,
        "shadow_fates_whole_run": dict(loaded),
        "verdicts": {k: len(v) for k, v in verdicts.items()},
        "oracle_cells": dict(cells),
        "policies": dict(policies),
        "load_spend_usd": load_spend,
        "budget": {
            "daily_usd": args.budget_usd,
            "halves": halves,
            "final_spend_usd": final_budget_spend,
        },
    }
    result_path.write_text(json.dumps(summary, indent=2))
    print(f"\nresults: {result_path}")


if __name__ == "__main__":
    main()
