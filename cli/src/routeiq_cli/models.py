"""`routeiq model ...`: list router versions, force a promotion, roll back.

Settings are the trainer's (``ROUTEIQ_TRAINER_*``); where a connection setting is not in the
environment, the local stack's endpoints (``ROUTEIQ_STACK_*``) fill it in, so on a developer
machine ``routeiq model list NAME`` just works. ``promote`` and ``rollback`` verify the bundle
(signature, hashes, probes) before announcing, so they need ``ROUTEIQ_TRAINER_SIGNING_KEY``.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

import click

from routeiq_cli.trainer import trainer_services, trainer_settings


def _operator() -> str:
    try:
        return f"cli@{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


@click.group("model")
def model() -> None:
    """Router versions in MLflow: list them, force a promotion, roll back."""


@model.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
def list_versions(name: str, as_json: bool) -> None:
    """Versions of router NAME with their metrics; * marks the champion."""
    from routeiq_trainer.wiring import build_registry

    registry = build_registry(trainer_settings())
    versions = registry.versions(name)
    if not versions:
        click.echo(f"{name}: no registered versions")
        return
    if as_json:
        for v in versions:
            click.echo(
                json.dumps(
                    {
                        "name": v.name,
                        "version": v.version,
                        "mlflow_version": v.number,
                        "router_type": v.router_type,
                        "champion": v.is_champion,
                        "gate": v.tags.get("routeiq.gate"),
                        "metrics": v.metrics,
                        "created_ms": v.created_ms,
                    },
                    sort_keys=True,
                )
            )
        return
    header = (
        f"  {'version':<30} {'#':>3} {'type':<5} {'apgr':>6} {'cpt50':>6} {'cpt80':>6} "
        f"{'$/req':>9} {'gate':<7} created (UTC)"
    )
    click.echo(header)
    for v in versions:
        m = v.metrics
        created = datetime.fromtimestamp(v.created_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{'*' if v.is_champion else ' '} {v.version:<30} {v.number:>3} {v.router_type:<5} "
            f"{_fmt(m.get('apgr')):>6} {_fmt(m.get('cpt50'), '.1f'):>6} "
            f"{_fmt(m.get('cpt80'), '.1f'):>6} {_fmt(m.get('mean_cost_usd'), '.6f'):>9} "
            f"{v.tags.get('routeiq.gate', '-'):<7} {created}"
        )


@model.command("promote")
@click.argument("name")
@click.argument("version")
def promote(name: str, version: str) -> None:
    """Make VERSION (bundle version or MLflow number) the champion and announce it,
    bypassing the gate; the bundle is verified first."""
    with trainer_services() as services:
        done = services.ops.promote(name, version, by=_operator())
    click.echo(
        f"promoted {name} {done.version.version} (MLflow version {done.version.number}); "
        f"was {done.previous or 'none'}; announced {done.record['announcement_id']}"
    )


@model.command("rollback")
@click.argument("name")
@click.argument("version", required=False)
def rollback(name: str, version: str | None) -> None:
    """Announce ROLLBACK to VERSION, or to the champion before the current one."""
    with trainer_services() as services:
        done = services.ops.rollback(name, version, by=_operator())
    click.echo(
        f"rolled {name} back to {done.version.version} (MLflow version {done.version.number}) "
        f"from {done.previous or 'none'}; announced {done.record['announcement_id']}"
    )
