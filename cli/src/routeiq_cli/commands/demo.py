"""`routeiq demo`: the closed loop on the running stack."""

from __future__ import annotations

import click

from routeiq_cli.stack.settings import StackSettings


@click.command("demo")
@click.option(
    "--train-queries",
    default=2000,
    show_default=True,
    help="With 9 candidates: how many dcrouter_train prompts to replay (0: all 5,608).",
)
def demo_command(train_queries: int) -> None:
    """The closed loop on the running stack: traffic → shards → training → hot-swap."""
    from routeiq_cli.demo import run_demo

    run_demo(StackSettings.load(), train_queries=train_queries)
