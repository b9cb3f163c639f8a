"""`routeiq`: the operator CLI (local stack, topics, schemas, traffic, evaluation, models).

This is the CLI's composition root: the command group and where each command comes from.
Each command loads ``StackSettings`` itself and builds the clients it needs.
"""

from __future__ import annotations

import click
from routeiq.service import run_command

from routeiq_cli.backfill import backfill
from routeiq_cli.causallm import causallm, route
from routeiq_cli.commands.demo import demo_command
from routeiq_cli.commands.evaluate import eval_command
from routeiq_cli.commands.features import features
from routeiq_cli.commands.replay import replay_command
from routeiq_cli.commands.schemas import schemas
from routeiq_cli.commands.stack import stack
from routeiq_cli.commands.topics import topics
from routeiq_cli.config import config
from routeiq_cli.keys import keys
from routeiq_cli.models import model
from routeiq_cli.report import report
from routeiq_cli.retrain import retrain


@click.group()
def cli() -> None:
    """RouteIQ operator commands."""


cli.add_command(stack)  # routeiq stack up / down / status / clean / endpoints
cli.add_command(topics)  # routeiq topics apply / list
cli.add_command(schemas)  # routeiq schemas register / check / release / docs
cli.add_command(replay_command)  # routeiq replay
cli.add_command(eval_command)  # routeiq eval
cli.add_command(features)  # routeiq features build / show
cli.add_command(demo_command)  # routeiq demo
cli.add_command(retrain)  # routeiq retrain request
cli.add_command(backfill)  # routeiq backfill jaeger
cli.add_command(model)  # routeiq model list / promote / rollback
cli.add_command(report)  # routeiq report
cli.add_command(keys)  # routeiq keys create / list / revoke
cli.add_command(config)  # routeiq config show / set / kill-switch / rollout / rollback / history
cli.add_command(causallm)  # routeiq causallm pipeline
cli.add_command(route)  # routeiq route "QUERY" --bundle DIR


def main() -> None:
    """Entry point: RouteIQ errors (invalid configuration included) print their reason and
    exit 1, without a traceback."""
    run_command(cli)


if __name__ == "__main__":
    main()
