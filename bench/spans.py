"""Span export benchmark: how long exporting the gateway's spans pauses the rest of the process.

The gateway's ``routeiq.route`` span carries the decision event (payload and 768-d embedding,
about 6 KB encoded). The SDK's ``BatchSpanProcessor`` encodes and posts a whole batch from its
own thread while holding the GIL, so a large batch is a pause that every request in flight
waits out. Measured here, side by side in one run and interleaved over rounds:

  none  spans recorded, never exported (the baseline: what the process does anyway)
  512   exported over OTLP/HTTP in the SDK's default batches of 512
  64    exported in batches of 64 (``TELEMETRY__EXPORT_BATCH_SIZE``'s default)

For each: how late a thread that sleeps 1 ms wakes (p99 and max: the pauses), and the process's
CPU time per span. The OTLP endpoint is a sink in its own process (it reads and drops). Also the
per-request costs on the request path: the query key's HMAC, the span event, one span's encoding.

Run: `make bench-spans` or `uv run python bench/spans.py` (no stack needed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from routeiq.contracts.records import CandidateDeployment, RouterDecision
from routeiq.routing.querykey import query_key

# The tests' helpers (decisions through the contract's builder, the port picker), as in the
# other benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
# The gateway's package imports LiteLLM, which otherwise fetches its cost map at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SINK = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
    """
)
PROMPT = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)


def decision() -> RouterDecision:
    """A decision over 9 candidates with a 768-d embedding, as the default bundle logs it."""
    from support.records import router_decision

    rng = np.random.default_rng(0)
    made: RouterDecision = router_decision(
        candidates=[
            CandidateDeployment(f"model-{i}", "p", score=0.5, propensity=0.1) for i in range(9)
        ],
        query_embedding=rng.standard_normal(768).astype(np.float32),
        embedding_model="routeiq/static256+sketch512",
    )
    return made


def one_run(
    provider: TracerProvider, event: dict[str, str], spans: int, rate: float
) -> dict[str, float]:
    """``spans`` spans at about ``rate`` per second while a thread measures its wake-up lateness."""
    tracer = provider.get_tracer("bench")
    late: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            time.sleep(0.001)
            late.append((time.perf_counter() - started) * 1000 - 1.0)

    thread = threading.Thread(target=ticker)
    thread.start()
    burst = 100
    cpu = time.process_time()
    for i in range(spans):
        with tracer.start_as_current_span("routeiq.route") as span:
            span.set_attributes({"routeiq.strategy": "learned", "routeiq.selected_model": "m"})
            span.add_event("routeiq.router_decision.v1", event)
        if i % burst == burst - 1:
            time.sleep(burst / rate)
    provider.force_flush(30_000)
    cpu = time.process_time() - cpu
    stop.set()
    thread.join()
    provider.shutdown()
    late.sort()
    return {
        "p99": late[int(len(late) * 0.99)],
        "max": late[-1],
        # The ticker's own CPU is in every arm alike; the differences are the export's.
        "cpu_us": cpu / spans * 1e6,
    }


def median_us(fn: Callable[[], object], n: int = 3000) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=6000, help="spans per arm and round")
    parser.add_argument("--rate", type=float, default=2000.0, help="spans per second offered")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from routeiq_gateway.telemetry import decision_event
    from support.processes import free_port, wait_until

    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    try:
        wait_until(lambda: _answers(endpoint), timeout=30, what="the OTLP sink")
        event = decision_event(decision())
        arms: dict[str, int | None] = {"none": None, "512": 512, "64": 64}
        results: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
        for rnd in range(args.rounds):
            order = list(arms)[rnd % len(arms) :] + list(arms)[: rnd % len(arms)]
            for arm in order:
                provider = TracerProvider()
                batch = arms[arm]
                if batch is not None:
                    exporter = OTLPSpanExporter(endpoint=endpoint)
                    provider.add_span_processor(
                        BatchSpanProcessor(exporter, max_export_batch_size=batch)
                    )
                results[arm].append(one_run(provider, event, args.spans, args.rate))
    finally:
        sink.terminate()
        sink.wait()

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("bench").start_as_current_span("routeiq.route") as span:
        span.add_event("routeiq.router_decision.v1", event)
    (finished,) = memory.get_finished_spans()
    spans: list[ReadableSpan] = [finished]
    key = b"bench-query-key-0123456789abcdef"
    d = decision()

    print("\nSpan export benchmark")
    print(
        f"  {args.spans} spans per arm and round at about {args.rate:.0f}/s, {args.rounds} "
        f"interleaved rounds (medians); one span {len(encode_spans(spans).SerializeToString())} "
        "bytes encoded"
    )
    print(f"\n{'batch':<6} {'lateness p99 ms':>16} {'lateness max ms':>16} {'CPU us/span':>12}")
    for arm, rows in results.items():
        print(
            f"{arm:<6} {statistics.median(r['p99'] for r in rows):>16.2f} "
            f"{statistics.median(r['max'] for r in rows):>16.1f} "
            f"{statistics.median(r['cpu_us'] for r in rows):>12.0f}"
        )
    print("\nper round (max lateness ms), in the order run")
    for arm, rows in results.items():
        print(f"  {arm:<5} " + "  ".join(f"{r['max']:.1f}" for r in rows))
    base = statistics.median(r["max"] for r in results["none"])
    print("\nratios against no export (max lateness)")
    for arm in ("512", "64"):
        print(f"  {arm}/none: {statistics.median(r['max'] for r in results[arm]) / base:.1f}x")
    print("\non the request path (median of 3000)")
    print(f"  query key (HMAC-SHA256)      {median_us(lambda: query_key(key, PROMPT)):7.1f} us")
    print(f"  the span's decision event    {median_us(lambda: decision_event(d)):7.1f} us")
    encode = median_us(lambda: encode_spans(spans).SerializeToString())
    print(f"  OTLP encoding of one span    {encode:7.1f} us")


def _answers(endpoint: str) -> bool:
    import httpx

    try:
        return httpx.post(endpoint, content=b"").status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
