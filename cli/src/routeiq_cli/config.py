"""`routeiq config`: the fleet's routing configuration, through any gateway's admin API.

Every change becomes the fleet's next version on the control topic, which every replica
applies (see docs/gateway.md, "Fleet-wide configuration"): ``set`` writes a strategy change
as JSON, ``kill-switch`` and ``rollout`` the two changes an incident or a rollout phase
needs, ``rollback`` restores an earlier version, ``history`` lists the versions (who, when,
what, why) from the audit topic, and ``show`` what this replica serves. Each change names
its operator (``--operator``, default ``$USER``) and should say why (``--reason``).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import click
import httpx

from routeiq_cli.keys import admin_call, admin_key_option, gateway_client, url_option

_reason = click.option("--reason", default=None, help="Why: kept with the version in the audit.")
_operator = click.option(
    "--operator", default=None, help="Who makes the change (default: the login name)."
)
_json = click.option("--json", "as_json", is_flag=True, help="Print the JSON answer instead.")


def _client(url: str | None, admin_key: str | None, operator: str | None) -> httpx.Client:
    client = gateway_client(url, admin_key)
    client.headers["x-routeiq-operator"] = operator or getpass.getuser()
    client.timeout = httpx.Timeout(30.0)  # a change waits for the write lock and the read-back
    return client


def _change(body: dict[str, Any], *, url: str | None, admin_key: str | None, **who: Any) -> None:
    with _client(url, admin_key, who["operator"]) as client:
        answer = admin_call(
            client, "PUT", "/admin/strategies", body={**body, "reason": who["reason"]}
        )
    written = answer["control"]["written"]
    click.echo(f"version {written['version']} written: {json.dumps(written['change'])}")


def render_versions(versions: list[dict[str, Any]]) -> str:
    if not versions:
        return "no versions yet: the model file's configuration serves"
    lines = []
    for v in versions:
        what = f"rollback to {v['rollback_to']}" if v["action"] == "ROLLBACK" else v["change"]
        lines.append(
            f"v{v['version']:<4} {v['changed_at_ms']}  {v['author']} via {v['written_by']}: "
            f"{what if isinstance(what, str) else json.dumps(what)}"
            + (f"  ({v['reason']})" if v.get("reason") else "")
        )
    return "\n".join(lines)


@click.group("config")
def config() -> None:
    """The fleet's routing configuration: show, set, kill switch, rollout, rollback, history."""


@config.command("show")
@_json
@url_option
@admin_key_option
def show(as_json: bool, url: str | None, admin_key: str | None) -> None:
    """The version this replica serves and its routing configuration."""
    with gateway_client(url, admin_key) as client:
        state = admin_call(client, "GET", "/admin/router")
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    control = state.get("control")
    if control is None:
        click.echo("this gateway has no control topic: its configuration is its own")
    else:
        applied = control["applied"] or {}
        click.echo(
            f"fleet {control['fleet']}: version {control['version']} "
            f"(latest {control['latest_version']})"
            + (f", by {applied['author']}: {applied.get('reason') or '-'}" if applied else "")
        )
        if control["refused"]:
            click.echo(f"REFUSED here: {control['refused']}")
    click.echo(json.dumps(state["routing"], indent=2))


@config.command("set")
@click.option("--json", "body_json", default=None, help="A strategy change, as JSON.")
@click.option("--file", "body_file", type=click.Path(exists=True, path_type=Path), default=None)
@_reason
@_operator
@url_option
@admin_key_option
def set_config(body_json: str | None, body_file: Path | None, **opts: Any) -> None:
    """Write a strategy change (the body of PUT /admin/strategies) as the next version."""
    if (body_json is None) == (body_file is None):
        raise click.UsageError("give the change as --json or --file, one of them")
    text = body_json if body_json is not None else body_file.read_text()  # type: ignore[union-attr]
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise click.UsageError(f"the change is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise click.UsageError("the change must be a JSON object")
    _change(body, **opts)


@config.command("kill-switch")
@click.argument("state", type=click.Choice(["on", "off"]))
@_reason
@_operator
@url_option
@admin_key_option
def kill_switch(state: str, **opts: Any) -> None:
    """Send all traffic to the default strategy (on), or undo it (off)."""
    _change({"kill_switch": state == "on"}, **opts)


@config.command("rollout")
@click.argument("strategy", required=False)
@click.option("--percent", type=click.FloatRange(0, 100), default=0.0, help="Share of users.")
@click.option("--team", "teams", multiple=True, help="A team that always gets it.")
@click.option("--domain", "domains", multiple=True, help="A domain that always gets it.")
@click.option("--monitoring-only", is_flag=True, help="Decide and log; serve the default.")
@click.option("--end", is_flag=True, help="End the rollout.")
@_reason
@_operator
@url_option
@admin_key_option
def rollout(
    strategy: str | None,
    percent: float,
    teams: tuple[str, ...],
    domains: tuple[str, ...],
    monitoring_only: bool,
    end: bool,
    **opts: Any,
) -> None:
    """Roll STRATEGY out to a sticky share of users, teams and domains (or --end it)."""
    if end == (strategy is not None):
        raise click.UsageError("name the STRATEGY to roll out, or --end the rollout")
    plan = {
        "strategy": strategy,
        "percent": percent,
        "teams": list(teams),
        "domains": list(domains),
        "monitoring_only": monitoring_only,
    }
    _change({"rollout": None if end else plan}, **opts)


@config.command("rollback")
@click.argument("version")
@_reason
@_operator
@url_option
@admin_key_option
def rollback(version: str, reason: str | None, operator: str | None, **opts: Any) -> None:
    """Restore VERSION's configuration ("previous", or a number; 0 is the model file's)."""
    target: int | str = "previous" if version == "previous" else _version(version)
    with _client(opts["url"], opts["admin_key"], operator) as client:
        answer = admin_call(
            client, "POST", "/admin/config/rollback", body={"version": target, "reason": reason}
        )
    written = answer["control"]["written"]
    click.echo(f"version {written['version']} written: rollback to {written['rollback_to']}")


def _version(text: str) -> int:
    if not text.isdigit():
        raise click.BadParameter(f"{text!r} is not a version number or 'previous'")
    return int(text)


@config.command("history")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20)
@_json
@url_option
@admin_key_option
def history(limit: int, as_json: bool, url: str | None, admin_key: str | None) -> None:
    """The fleet's versions, newest last: who, when (unix ms), what, why."""
    with gateway_client(url, admin_key) as client:
        client.timeout = httpx.Timeout(30.0)
        found = admin_call(client, "GET", "/admin/config/history", params={"limit": str(limit)})
    click.echo(json.dumps(found, indent=2) if as_json else render_versions(found["versions"]))
