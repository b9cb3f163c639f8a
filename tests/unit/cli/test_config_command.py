"""`routeiq config`: what it refuses before calling any gateway, and how it lists versions."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from routeiq_cli.__main__ import cli
from routeiq_cli.config import render_versions

NOWHERE = ["--url", "http://127.0.0.1:9", "--admin-key", "k" * 20]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", *NOWHERE], "give the change as --json or --file"),
        (["set", "--json", "{", *NOWHERE], "the change is not JSON"),
        (["set", "--json", "[1]", *NOWHERE], "must be a JSON object"),
        (["rollout", *NOWHERE], "name the STRATEGY to roll out, or --end"),
        (["rollout", "s", "--end", *NOWHERE], "name the STRATEGY to roll out, or --end"),
        (["rollback", "two", *NOWHERE], "is not a version number"),
        (["kill-switch", "maybe", *NOWHERE], "'maybe' is not one of"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["config", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_an_unreachable_gateway_is_named() -> None:
    result = CliRunner().invoke(cli, ["config", "kill-switch", "on", *NOWHERE])
    assert result.exit_code == 1
    assert "cannot reach the gateway at http://127.0.0.1:9" in result.output


def test_versions_read_as_who_when_what_why() -> None:
    versions = [
        {
            "version": 1,
            "action": "UPDATE",
            "changed_at_ms": 1_700_000_000_000,
            "author": "ana",
            "written_by": "gw-0",
            "change": {"kill_switch": True},
            "reason": "incident 42",
            "rollback_to": None,
        },
        {
            "version": 2,
            "action": "ROLLBACK",
            "changed_at_ms": 1_700_000_100_000,
            "author": "bo",
            "written_by": "gw-1",
            "change": {},
            "reason": None,
            "rollback_to": 0,
        },
    ]
    assert render_versions(versions).splitlines() == [
        'v1    1700000000000  ana via gw-0: {"kill_switch": true}  (incident 42)',
        "v2    1700000100000  bo via gw-1: rollback to 0",
    ]
    assert "model file" in render_versions([])
