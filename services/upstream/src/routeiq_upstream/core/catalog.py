"""The served models: every model any loaded dataset recorded, plus aliases for them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from routeiq.errors import ConfigError

from routeiq_upstream.errors import ModelNotFoundError

V = TypeVar("V")


class ModelCatalog:
    """Resolves a requested model name (canonical or alias) to the canonical name."""

    def __init__(self, *, models: Iterable[str], aliases: Mapping[str, str] | None = None) -> None:
        self.models = tuple(models)
        if not self.models:
            raise ConfigError("no models to serve: the datasets recorded none")
        served = set(self.models)
        aliases = dict(aliases or {})
        clashes = sorted(a for a in aliases if a in served)
        if clashes:
            raise ConfigError(f"aliases {clashes} are the names of served models")
        dangling = {a: t for a, t in aliases.items() if t not in served}
        if dangling:
            raise ConfigError(
                f"aliases point at models no dataset serves: {dangling}; "
                f"served: {', '.join(self.models)}"
            )
        self.aliases = aliases
        self._lookup = {m: m for m in self.models} | aliases

    def resolve(self, name: str) -> str:
        """The canonical name for ``name``; ModelNotFoundError (404) when neither served nor
        an alias."""
        try:
            return self._lookup[name]
        except KeyError:
            raise ModelNotFoundError(name) from None

    def check_keys(self, mapping: Mapping[str, V], setting: str) -> dict[str, V]:
        """``mapping`` re-keyed by canonical name; ConfigError naming unknown models."""
        unknown = sorted(k for k in mapping if k not in self._lookup)
        if unknown:
            raise ConfigError(
                f"{setting} names models that are not served: {unknown}; "
                f"served: {', '.join(self.models)}"
            )
        return {self._lookup[k]: v for k, v in mapping.items()}
