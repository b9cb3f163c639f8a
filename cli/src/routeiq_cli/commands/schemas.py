"""`routeiq schemas ...`: the Avro contracts in schemas/ and the schema registry."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from routeiq.contracts.topics import TOPICS

from routeiq_cli import schemas as schema_ops
from routeiq_cli.clients import registry_client
from routeiq_cli.stack.settings import StackSettings, repo_root


@click.group()
def schemas() -> None:
    """Avro contracts in schemas/ and the schema registry."""


@schemas.command("register")
def schemas_register() -> None:
    """Register every released version (and an unreleased working copy) in order."""
    client = registry_client(StackSettings.load())
    for result in schema_ops.register_all(client, TOPICS):
        verb = "registered" if result.registered else "present"
        click.echo(f"{verb:<10} {result.subject} {result.label} id={result.schema_id}")


@schemas.command("check")
@click.option("--offline", is_flag=True, help="Only check against released files.")
def schemas_check(offline: bool) -> None:
    """Working copies against every released version and the running registry."""
    registry_url = None if offline else StackSettings.load().registry.url
    failed = False
    for finding in schema_ops.check(TOPICS, registry_url):
        failed = failed or not finding.ok
        click.echo(f"{'ok  ' if finding.ok else 'FAIL'} {finding.subject}: {finding.message}")
    if failed:
        sys.exit(1)


@schemas.command("release")
def schemas_release() -> None:
    """Freeze changed working copies as new released versions (after checking them)."""
    written = schema_ops.release(TOPICS)
    for path in written:
        click.echo(f"released {path}")
    if not written:
        click.echo("nothing to release: every working copy equals its latest version")


@schemas.command("docs")
@click.option(
    "--output", type=click.Path(path_type=Path), default=None, help="Default: docs/contracts.md"
)
def schemas_docs(output: Path | None) -> None:
    """Regenerate the Markdown table of fields per contract."""
    target = output or repo_root() / "docs" / "contracts.md"
    target.write_text(schema_ops.render_docs(TOPICS))
    click.echo(f"wrote {target}")
