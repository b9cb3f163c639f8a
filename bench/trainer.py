"""Trainer benchmark: training time and examples/s per router type, CPU and (if present) CUDA.

Examples: LLMRouter's 5,608 training queries with 9 models' scores, embedded once with the
numpy MiniLM (cached under ``.routeiq/trainer-cache``), resampled with replacement to N and
jittered with Gaussian noise (σ = 0.02 per dimension, then re-normalised) so every example is
a distinct point; each keeps its source query's scores. The same N examples go to every
router type and device.

Measured: ``Router.fit`` wall time with default parameters (the epochs column says how many
passes the neural routers make) and a fixed seed; examples/s = N / fit seconds. On CUDA,
torch routers run with bf16 autocast; kNN and SVM are CPU-only in both columns. The speed-up
is CPU seconds / CUDA seconds, both measured in this run. Without CUDA, the ratio printed is
the 100k time over the 10k time (also this run): how each type scales. A sanity column gives
the APGR of each fitted router on LLMRouter's 500 test queries (strong = the most expensive
candidate, weak = the cheapest), so a fast-but-broken fit would show.

BERT fine-tunes the whole encoder on text, so its N are real (not jittered) queries; on a
small CPU one epoch over 1,000 queries takes minutes, so it runs at ``--bert-size`` only
(default 1,000, one epoch, 128 tokens) and is excluded at 10k/100k on CPU; on CUDA it runs
at ``--bert-size`` and at 5,608 (the whole training set).

Run: ``uv run python bench/trainer.py`` (``--sizes 10000,100000``, ``--types knn,svm,mlp,mf``,
``--bert-size 1000``, ``--no-bert``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

# transformers prints a weight-loading report for the BERT router; keep the table readable.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from routeiq.routing.datasets import llmrouter_prices, load_llmrouter
from routeiq.routing.evaluation import router_quality
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.routing.routers import FitContext, TrainingData, router_class

ROOT = Path(__file__).resolve().parents[1]
NOISE = 0.02
EPOCHS = {"mlp": 30, "mf": 40}  # the routers' defaults, printed for context


def examples(n: int, base: TrainingData, *, seed: int) -> TrainingData:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), n)
    x = base.embeddings[idx] + rng.normal(scale=NOISE, size=(n, base.embeddings.shape[1]))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return TrainingData(
        embeddings=x,
        quality=base.quality[idx],
        models=base.models,
        event_times=np.arange(n, dtype=np.int64),
    )


def fit(kind: str, data: TrainingData, device: str, params: dict) -> tuple[object, float, dict]:
    ctx = FitContext(seed=0, device=device)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    router = router_class(kind).fit(data, params, ctx=ctx)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return router, time.perf_counter() - start, dict(ctx.info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--types", default="knn,svm,mlp,mf")
    parser.add_argument("--bert-size", type=int, default=1000)
    parser.add_argument("--no-bert", action="store_true")
    parser.add_argument("--cache", default=str(ROOT / ".routeiq" / "trainer-cache"))
    args = parser.parse_args()
    import torch

    sizes = [int(s) for s in args.sizes.split(",")]
    types = [t for t in args.types.split(",") if t]
    cuda = torch.cuda.is_available()
    devices = ["cpu", "cuda"] if cuda else ["cpu"]
    print("RouteIQ trainer benchmark")
    print(
        f"  host: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load average {os.getloadavg()[0]:.1f} at start "
        "(a shared machine skews timings)"
    )
    print(
        f"  CUDA: {torch.cuda.get_device_name(0)}"
        if cuda
        else "  CUDA: not available (CPU columns only; the ratio is 100k time / 10k time)"
    )
    store = FeatureStore(cache_dir=Path(args.cache, featurizer=minilm_pipeline()))
    train_ds, test_ds = load_llmrouter(split="train"), load_llmrouter(split="test")
    t0 = time.perf_counter()
    base = TrainingData(
        embeddings=store.embed(train_ds.prompts),
        quality=train_ds.scores,
        models=train_ds.models,
        texts=list(train_ds.prompts),
    )
    test_x = store.embed(test_ds.prompts)
    print(
        f"  data: LLMRouter {len(train_ds)} train / {len(test_ds)} test queries, "
        f"{len(train_ds.models)} models (embeddings ready in {time.perf_counter() - t0:.1f}s)"
    )
    prices = llmrouter_prices()
    cost = {m: prices[m].input_per_m + prices[m].output_per_m for m in train_ds.models}
    strong = max(cost, key=cost.__getitem__)
    weak = min(cost, key=cost.__getitem__)
    s, w = train_ds.models.index(strong), train_ds.models.index(weak)
    print(f"  sanity APGR on the test split: strong={strong}, weak={weak}")
    print(f"  examples: resampled with replacement, embedding noise sigma={NOISE}, seed 0\n")

    rows: list[dict] = []
    header = (
        f"{'type':<5} {'N':>7} {'epochs':>6} | {'cpu s':>8} {'cpu ex/s':>10} | "
        f"{'cuda s':>8} {'cuda ex/s':>10} {'speed-up':>8} | {'APGR':>6}"
    )
    print(header)
    print("-" * len(header))

    def run(kind: str, n: int, data: TrainingData, params: dict, run_devices: list[str]) -> None:
        row: dict = {"type": kind, "n": n, "epochs": params.get("epochs", EPOCHS.get(kind, ""))}
        router = None
        for device in run_devices:
            router, seconds, info = fit(kind, data, device, params)
            row[f"{device}_s"] = seconds
            row[f"{device}_eps"] = n / seconds
            row[f"{device}_info"] = {k: v for k, v in info.items() if k != "final_loss"}
        texts = list(test_ds.prompts) if kind == "bert" else None
        pred = router.predict(test_x, texts)  # type: ignore[attr-defined]
        row["apgr"] = router_quality(
            pred[:, s] - pred[:, w], test_ds.scores[:, s], test_ds.scores[:, w]
        ).apgr
        if "cuda_s" in row and "cpu_s" in row:
            row["speedup"] = row["cpu_s"] / row["cuda_s"]
        rows.append(row)
        cuda_cols = (
            f"{row['cuda_s']:>8.3f} {row['cuda_eps']:>10,.0f} "
            + (f"{row['speedup']:>7.1f}x" if "speedup" in row else f"{'-':>8}")
            if "cuda_s" in row
            else f"{'-':>8} {'-':>10} {'-':>8}"
        )
        cpu_cols = (
            f"{row['cpu_s']:>8.3f} {row['cpu_eps']:>10,.0f}"
            if "cpu_s" in row
            else f"{'-':>8} {'-':>10}"
        )
        print(
            f"{kind:<5} {n:>7,} {row['epochs']!s:>6} | {cpu_cols} | {cuda_cols} | "
            f"{row['apgr']:>6.3f}",
            flush=True,
        )

    for n in sizes:
        data = examples(n, base, seed=0)
        for kind in types:
            run(kind, n, data, {}, devices)
    if not args.no_bert:
        bert_params = {"epochs": 1, "max_length": 128}
        # A seeded random sample: the file is grouped by source task, so its head is not.
        pick = np.random.default_rng(0).permutation(len(base))[: args.bert_size]
        subset = base.subset(np.sort(pick))
        run("bert", len(subset), subset, bert_params, devices)
        if cuda:
            run("bert", len(base), base, bert_params, ["cuda"])

    if not cuda and len(sizes) > 1:
        print(
            f"\nscaling (no CUDA): fit time at {sizes[-1]:,} / fit time at {sizes[0]:,}, same run"
        )
        for kind in types:
            times = {r["n"]: r["cpu_s"] for r in rows if r["type"] == kind}
            print(
                f"  {kind:<5} {times[sizes[-1]] / times[sizes[0]]:6.1f}x "
                f"for {sizes[-1] / sizes[0]:.0f}x the examples"
            )
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"trainer-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"cuda": cuda, "rows": rows}, indent=2, default=str))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
