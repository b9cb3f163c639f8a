"""`routeiq keys create|list|revoke`: virtual API keys through the gateway's admin API.

The gateway stores only each key's hash, so ``create`` prints the key once: there is no way to
read it back. The admin key comes from ``--admin-key`` / ``ROUTEIQ_ADMIN_KEY``, else from the
local stack's secrets. The CLI's ``__main__`` registers the ``keys`` group; ``report`` uses
``admin_get`` for the budget table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import httpx

from routeiq_cli.stack.secrets import load_or_create
from routeiq_cli.stack.settings import StackSettings


def gateway_client(url: str | None, admin_key: str | None) -> httpx.Client:
    """An HTTP client on the gateway's admin API (the local stack's when not given)."""
    if url is None or admin_key is None:
        settings = StackSettings.load()
        url = url or f"http://{settings.host}:{settings.gateway_port}"
        admin_key = admin_key or load_or_create(settings).admin_key
    return httpx.Client(
        base_url=url, headers={"authorization": f"Bearer {admin_key}"}, timeout=10.0
    )


def call_json(
    send: Callable[[], httpx.Response], *, service: str, url: str, what: str
) -> dict[str, Any]:
    """A service's JSON object answer to ``send()``; ``click.ClickException`` with the reason
    (unreachable, not JSON, refused with its OpenAI-style message) otherwise."""
    try:
        response = send()
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach {service} at {url}: {exc} (is it running? `make up`)"
        ) from exc
    try:
        answer = response.json()
    except ValueError as exc:
        raise click.ClickException(
            f"{what} answered {response.status_code} with no JSON: {response.text[:200]!r}"
        ) from exc
    if response.status_code >= 400:
        error = answer.get("error") if isinstance(answer, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise click.ClickException(
            f"{service} refused {what} ({response.status_code}): {message or answer}"
        )
    if not isinstance(answer, dict):
        raise click.ClickException(f"{what} did not answer with a JSON object")
    return answer


def admin_call(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One admin API call's JSON answer; ``click.ClickException`` with the gateway's reason."""
    return call_json(
        lambda: client.request(method, path, json=body, params=params),
        service="the gateway",
        url=str(client.base_url),
        what=f"{method} {path}",
    )


def admin_get(client: httpx.Client, path: str) -> dict[str, Any]:
    return admin_call(client, "GET", path)


def render_keys(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no virtual keys"
    rows = [
        [r["key_id"], r["team"], r.get("user") or "—", r.get("alias") or "—", str(r["created_at"])]
        for r in records
    ]
    headers = ["key id", "team", "user", "alias", "created (unix)"]
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, ["-" * w for w in widths], *rows]
    )


# Where the admin API is and its key: shared by every command that calls it.
url_option = click.option(
    "--url", default=None, help="The gateway's base URL (default: local stack)."
)
admin_key_option = click.option(
    "--admin-key", envvar="ROUTEIQ_ADMIN_KEY", default=None, help="The gateway's admin key."
)


@click.group("keys")
def keys() -> None:
    """Virtual API keys per team: create, list, revoke."""


@keys.command("create")
@click.option("--team", required=True, help="The team the key spends for.")
@click.option("--user", default=None, help="The user the key stands for (optional).")
@click.option("--alias", default=None, help="A name to recognise the key by.")
@url_option
@admin_key_option
def create(
    team: str, user: str | None, alias: str | None, url: str | None, admin_key: str | None
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    body = {"team": team, "user": user, "alias": alias}
    with gateway_client(url, admin_key) as client:
        made = admin_call(client, "POST", "/admin/keys", body=body)
    click.echo(made["key"])
    click.echo(
        f"key id {made['key_id']} for team {made['team']}: store the key now, "
        "the gateway keeps only its hash",
        err=True,
    )


@keys.command("list")
@click.option("--team", default=None, help="Only this team's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON answer instead.")
@url_option
@admin_key_option
def list_keys(team: str | None, as_json: bool, url: str | None, admin_key: str | None) -> None:
    """The keys' ids, teams and users (never the keys)."""
    params = {"team": team} if team else None
    with gateway_client(url, admin_key) as client:
        found = admin_call(client, "GET", "/admin/keys", params=params)
    click.echo(json.dumps(found, indent=2) if as_json else render_keys(found["keys"]))


@keys.command("revoke")
@click.argument("key_id")
@url_option
@admin_key_option
def revoke(key_id: str, url: str | None, admin_key: str | None) -> None:
    """Revoke the key with KEY_ID (as `routeiq keys list` shows it)."""
    with gateway_client(url, admin_key) as client:
        gone = admin_call(client, "DELETE", f"/admin/keys/{key_id}")
    click.echo(f"revoked {key_id} (team {gone['revoked']['team']})")
