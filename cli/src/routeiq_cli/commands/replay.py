"""`routeiq replay`: benchmark traffic through the gateway, with graded feedback."""

from __future__ import annotations

import json
import sys

import click

from routeiq_cli.stack.settings import StackSettings


@click.command("replay")
@click.option("--gateway", default=None, help="Gateway base URL (default: the local stack's).")
@click.option(
    "--dataset",
    default="gsm8k",
    show_default=True,
    help="gsm8k, mt_bench, llmrouter-train, llmrouter-test or a CSV file.",
)
@click.option(
    "--part",
    type=click.Choice(["train", "test", "all"]),
    default="all",
    show_default=True,
    help="Which half of a seeded 50/50 split to send.",
)
@click.option("--split-seed", default=0, show_default=True)
@click.option("--limit", type=int, default=None, help="At most this many prompts.")
@click.option("--rate", type=float, default=None, help="Requests per second (default: max).")
@click.option("--concurrency", default=8, show_default=True)
@click.option(
    "--feedback/--no-feedback",
    default=True,
    show_default=True,
    help="Post the recorded (or judged) quality of each answer as feedback.",
)
@click.option(
    "--shadow-fraction",
    default=0.0,
    show_default=True,
    help="Share of requests that also get every other candidate's graded outcome.",
)
@click.option("--upstream", default=None, help="Upstream for shadow calls (default: stack's).")
@click.option(
    "--judge-model",
    default=None,
    help="Grade answers with this LiteLLM model (blind) instead of recorded labels.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--tag", default=None, help="Sent as x-routeiq-team, to find these requests.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def replay_command(
    gateway: str | None,
    dataset: str,
    part: str,
    split_seed: int,
    limit: int | None,
    rate: float | None,
    concurrency: int,
    feedback: bool,
    shadow_fraction: float,
    upstream: str | None,
    judge_model: str | None,
    seed: int,
    tag: str | None,
    as_json: bool,
) -> None:
    """Drive benchmark traffic through the gateway, posting graded feedback."""
    import asyncio

    from routeiq.routing.datasets import load_named
    from tqdm import tqdm

    from routeiq_cli.replay import Replayer, split_rows

    settings = StackSettings.load()
    ds = load_named(dataset)
    if part == "all":
        rows = list(range(len(ds)))
    else:
        train, test = split_rows(ds, seed=split_seed)
        rows = train if part == "train" else test
    rows = rows[:limit] if limit else rows
    with tqdm(total=len(rows), desc=f"replay {dataset}/{part}", unit="req", disable=as_json) as bar:
        replayer = Replayer(
            ds,
            gateway=gateway or f"http://{settings.host}:{settings.gateway_port}",
            upstream=upstream or f"http://{settings.host}:{settings.upstream_port}/v1",
            concurrency=concurrency,
            rate=rate,
            feedback=feedback,
            shadow_fraction=shadow_fraction,
            judge_model=judge_model,
            seed=seed,
            headers={"x-routeiq-team": tag} if tag else None,
            progress=bar,
        )
        stats = asyncio.run(replayer.run(rows))
    summary = stats.as_dict(ds.strong)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{stats.ok}/{stats.sent} served ({stats.errors} errors) in {stats.elapsed_s:.1f}s; "
            f"mean quality {stats.mean_quality:.3f}; cost ${stats.cost_usd:.4f} "
            f"(${stats.cost_per_1k:.3f} per 1k); strong calls {stats.strong_pct(ds.strong):.1f}%"
        )
        click.echo(f"models: {dict(stats.by_model)}; router versions: {dict(stats.by_version)}")
        click.echo(f"feedback posted: {stats.feedback} (+{stats.shadow} shadow)")
    for sample in stats.error_samples[:5]:
        click.echo(f"  error: {sample}", err=True)
    if stats.errors:
        sys.exit(1)
