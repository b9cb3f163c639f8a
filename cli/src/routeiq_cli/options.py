"""Option types and parsers shared by several commands."""

from __future__ import annotations

from collections.abc import Iterable

import click

# `--features` / `--kind`: routeiq.routing.featurizer.PIPELINES, spelled out because importing
# the featurizer (numpy, scipy) would slow every command's start; a unit test keeps them equal.
FEATURE_KINDS = click.Choice(["static", "minilm", "minilm+sketch"])


def key_values(
    items: Iterable[str], *, expected: str = "KEY=VALUE", key_has: str = ""
) -> list[tuple[str, str]]:
    """Repeated ``--param KEY=VALUE`` options as pairs; a malformed one (no ``=``, no key, or
    a key without ``key_has``) is refused."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or key_has not in name:
            raise click.BadParameter(f"expected {expected}, got {item!r}", param_hint="--param")
        pairs.append((name, value))
    return pairs
