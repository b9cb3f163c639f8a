"""`routeiq topics ...`: the topics declared in ``routeiq.contracts.topics``."""

from __future__ import annotations

import click
from routeiq.contracts.topics import TOPICS
from routeiq.kafka import apply_topics, make_admin

from routeiq_cli.stack.settings import StackSettings


@click.group()
def topics() -> None:
    """Topics declared in routeiq.contracts.topics."""


@topics.command("apply")
def topics_apply() -> None:
    """Create missing topics and align configs (idempotent; never deletes)."""
    for change in apply_topics(make_admin(StackSettings.load().kafka), TOPICS):
        click.echo(f"{change.action:<10} {change.name} {change.details}".rstrip())


@topics.command("list")
def topics_list() -> None:
    """Show the declaration."""
    for spec in TOPICS:
        click.echo(
            f"{spec.name:<34} partitions={spec.partitions} key={spec.key!r} "
            f"subject={spec.value_subject} {spec.compatibility.value} {spec.configs or ''}"
        )
