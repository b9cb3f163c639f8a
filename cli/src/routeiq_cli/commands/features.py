"""`routeiq features ...`: build and inspect feature pipelines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from routeiq_cli.options import FEATURE_KINDS
from routeiq_cli.stack.settings import StackSettings


@click.group()
def features() -> None:
    """Feature pipelines: what routers read, shared by gateways and trainers."""


@features.command("build")
@click.option("--kind", type=FEATURE_KINDS, default="static", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder to write (default: <state>/features/<kind>).",
)
@click.option("--sketch-seed", default=0, show_default=True, help="Keys the n-gram hashing.")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="static: tokens read per prompt (default 256).",
)
@click.option(
    "--tail-tokens",
    type=click.IntRange(min=0),
    default=None,
    help="static: of those, how many a long prompt gives from its end (default 128; 0: "
    "the first max-tokens only, as pipelines before 2026-12).",
)
def features_build(
    kind: str, out: Path | None, sketch_seed: int, max_tokens: int | None, tail_tokens: int | None
) -> None:
    """Distil the static encoder from the packaged MiniLM (offline) and save the pipeline."""
    from routeiq_cli.pipelines import build_pipeline

    folder = out or StackSettings.load().state / "features" / kind
    started = time.monotonic()
    tokens = {"max_tokens": max_tokens, "tail_tokens": tail_tokens}
    pipeline = build_pipeline(
        kind,
        folder,
        sketch_seed=sketch_seed,
        **{k: v for k, v in tokens.items() if v is not None},
    )
    click.echo(
        f"{pipeline.id}: {pipeline.dimension} features in {folder} "
        f"({time.monotonic() - started:.1f}s)"
    )


@features.command("show")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
def features_show(folder: Path) -> None:
    """A pipeline's spec, after checking its files against it."""
    from routeiq.routing.featurizer import read_pipeline

    click.echo(json.dumps(read_pipeline(folder).spec.to_dict(), indent=2))
