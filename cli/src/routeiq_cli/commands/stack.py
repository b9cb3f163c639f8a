"""`routeiq stack ...`: the native local stack under supervisord."""

from __future__ import annotations

import sys

import click

from routeiq_cli.stack import runner
from routeiq_cli.stack.settings import StackSettings


@click.group()
def stack() -> None:
    """The native local stack (Kafka, registry, S3, Redis, MLflow) under supervisord."""


@stack.command("up")
def stack_up() -> None:
    """Install what is missing and start everything, health-gated, in dependency order."""
    runner.up(StackSettings.load())


@stack.command("down")
def stack_down() -> None:
    """Stop everything; data is kept."""
    runner.down(StackSettings.load())


@stack.command("status")
def stack_status() -> None:
    """Show each component's state and health (exit 1 if any is unhealthy)."""
    if not runner.status(StackSettings.load()):
        sys.exit(1)


@stack.command("clean")
def stack_clean() -> None:
    """Stop everything and delete all state (topics, messages, schemas, objects, runs)."""
    runner.clean(StackSettings.load())


@stack.command("endpoints")
def stack_endpoints() -> None:
    """Print where everything listens."""
    click.echo(runner.endpoints_table(StackSettings.load()))
