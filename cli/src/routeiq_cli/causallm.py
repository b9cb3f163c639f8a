"""`routeiq causallm pipeline` and `routeiq route`: the causal-LM router's whole pipeline in one
command, and one routing decision shown without calling a model.

``pipeline`` does what the design's ``run_full_pipeline.sh`` does, over the shipped data: the
train/test split first (by query, before any label exists), then oracle labels and the SFT and
DPO data from the training rows only (inside ``CausalLMRouter.fit``), training, a signed
bundle, and the evaluation before and after DPO on the held-out rows (the table of
``routeiq.routing.policy_eval``). ``route`` loads a bundle (signature and every file checked)
and prints, for one query, the policy label with its probability, the model the policy mapper
picks and why; any other router type prints its per-model quality estimates.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from routeiq_cli.stack.secrets import load_or_create
from routeiq_cli.stack.settings import StackSettings

# Tokens per character for pricing recorded prompts and answers (a rough English average).
CHARS_PER_TOKEN = 4


def _training_data(name: str, limit: int | None) -> tuple[Any, dict[str, float]]:
    """The dataset as (cheap, strong) training rows with texts, and each model's mean cost
    per query in USD from the recorded prompts and answers at list prices."""
    from routeiq.routing.datasets import load_named
    from routeiq.routing.routers import TrainingData

    ds = load_named(name)
    if ds.weak is None or ds.strong is None:
        raise click.UsageError(f"{name} does not name a cheap and a strong model")
    rows = list(range(len(ds.prompts)))[:limit]
    cheap, strong = ds.weak, ds.strong
    cols = [ds.models.index(cheap), ds.models.index(strong)]
    costs = {}
    for model in (cheap, strong):
        price = ds.prices[model]
        costs[model] = float(
            np.mean(
                [
                    price.cost(
                        len(ds.prompts[i]) // CHARS_PER_TOKEN,
                        len(ds.responses[i].get(model, "")) // CHARS_PER_TOKEN,
                    )
                    for i in rows
                ]
            )
        )
    data = TrainingData(
        embeddings=np.zeros((len(rows), 1), dtype=np.float32),
        quality=ds.scores[rows][:, cols],
        models=(cheap, strong),
        texts=[ds.prompts[i] for i in rows],
    )
    return data, costs


@click.group("causallm")
def causallm() -> None:
    """The causal-LM policy router (SFT then DPO with LoRA): the whole pipeline."""


@causallm.command("pipeline")
@click.option("--data", "dataset", default="gsm8k", show_default=True, help="A dataset name.")
@click.option(
    "--base-model",
    default=None,
    help="A local folder or installed package with a causal LM (safetensors) and tokenizer.",
)
@click.option(
    "--tiny-base",
    is_flag=True,
    help="No pretrained model: build a 2-layer random one on the training texts (smoke runs).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Where to write.")
@click.option("--held-out", type=click.FloatRange(0.05, 0.9), default=0.25, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(10), default=None, help="Only the first N rows.")
@click.option("--params", "params_json", default="{}", help="Router parameters, as JSON.")
def pipeline(
    dataset: str,
    base_model: str | None,
    tiny_base: bool,
    out: Path,
    held_out: float,
    seed: int,
    limit: int | None,
    params_json: str,
) -> None:
    """Split → oracle labels → SFT and DPO → signed bundle → evaluation before/after DPO."""
    from routeiq.routing.bundle import Candidate, signer_from, write_bundle
    from routeiq.routing.featurizer import minilm_pipeline
    from routeiq.routing.policy_eval import compare_stages, format_table, split_held_out
    from routeiq.routing.routers import CausalLMRouter, FitContext
    from routeiq.routing.routers.causallm_lm import build_tiny_base

    if (base_model is None) == (not tiny_base):
        raise click.UsageError("name a --base-model, or ask for a --tiny-base")
    try:
        params = json.loads(params_json)
    except ValueError as exc:
        raise click.UsageError(f"--params is not JSON: {exc}") from exc
    data, costs = _training_data(dataset, limit)
    # The split comes first: no label, pair or vocabulary is ever built from a held-out row.
    train, test = split_held_out(data, held_out, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    if tiny_base:
        base_model = str(build_tiny_base(out / "tiny-base", list(train.texts or []), seed=seed))
    cheap, strong = data.models
    params = {"base_model": base_model, "cheap": cheap, "strong": strong, **params}
    click.echo(f"{dataset}: {len(train)} training rows, {len(test)} held out; base {base_model}")
    started = time.perf_counter()
    router = CausalLMRouter.fit(train, params, ctx=FitContext(seed=seed, log=click.echo))
    click.echo(f"trained in {time.perf_counter() - started:.0f} s")
    stages = compare_stages(router, test, costs=costs)
    click.echo(format_table(stages))
    (out / "evaluation.json").write_text(
        json.dumps([s.__dict__ for s in stages], indent=2, sort_keys=True)
    )
    secrets = load_or_create(StackSettings.load())
    manifest = write_bundle(
        router,
        out / "bundle",
        name=f"{dataset}-causallm",
        version=time.strftime("%Y%m%d%H%M%S"),
        candidates=[Candidate(m) for m in data.models],
        signer=signer_from("ed25519", secrets.signing_private),
        featurizer=minilm_pipeline(),
        metrics={f"dpo_{k}": float(getattr(stages[-1], k)) for k in ("accuracy", "cost_savings")},
    )
    click.echo(f"bundle {manifest.name}/{manifest.version} in {out / 'bundle'} (signed)")


@click.command("route")
@click.argument("query")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--verify-key", default=None, help="Ed25519 public key (default: the stack's).")
def route(query: str, bundle: Path, verify_key: str | None) -> None:
    """One routing decision for QUERY from a router bundle, without calling any model."""
    from routeiq.routing.bundle import BundleError, load_bundle, verifier_from
    from routeiq.routing.oracle import POLICIES
    from routeiq.routing.routers import CausalLMRouter

    key = verify_key or load_or_create(StackSettings.load()).signing_public
    try:
        loaded = load_bundle(bundle, verifier_from("ed25519", key))
    except BundleError as exc:
        raise click.ClickException(f"bundle refused: {exc}") from exc
    router, models = loaded.router, loaded.manifest.models
    click.echo(f"router {loaded.manifest.name}/{loaded.version} ({loaded.manifest.router_type})")
    if isinstance(router, CausalLMRouter):
        p = router.policy_probabilities([query])[0]
        policy = POLICIES[int(np.argmax(p))]
        model = router.routed_model(policy)
        shares = ", ".join(f"{name} {v:.2f}" for name, v in zip(POLICIES, p, strict=True))
        click.echo(f"policy: {policy} (P = {shares})")
        click.echo(f"model: {model} (the policy mapper sends {policy} to it)")
        return
    embedding = loaded.featurizer.encode([query])
    quality = router.predict(embedding, [query])[0]
    best = models[int(np.argmax(quality))]
    estimates = ", ".join(f"{m} {q:.3f}" for m, q in zip(models, quality, strict=True))
    click.echo(f"expected quality: {estimates}")
    click.echo(f"model: {best} (highest expected quality)")
