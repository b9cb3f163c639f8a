"""Router types and strategy kinds from installed packages, through Python entry points.

A team ships its own router or strategy as a package that declares it in the entry-point
group ``routeiq.routers`` or ``routeiq.strategies`` (``name = module:Class``); RouteIQ finds
it by name without a fork. Built-ins come first. Entry points are listed once (cached) and a
plugin is imported only when its own name is looked up, so a broken plugin never breaks the
lookup of another name. Every plugin is checked before use: the target imports, is a concrete
subclass of the group's base class, declares ``kind`` equal to its entry-point name, and that
name is neither a built-in's nor another distribution's. Each problem is an error naming the
distribution and the entry point, raised for that name and by ``check``; none is skipped.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from routeiq.errors import RouteIQError

__all__ = ["ROUTER_GROUP", "STRATEGY_GROUP", "PluginGroup", "by_kind", "describe_entry_point"]

ROUTER_GROUP = "routeiq.routers"
STRATEGY_GROUP = "routeiq.strategies"

T = TypeVar("T")


class _Kinded(Protocol):
    kind: ClassVar[str]


KindedT = TypeVar("KindedT", bound=_Kinded)


def by_kind(*classes: type[KindedT]) -> dict[str, type[KindedT]]:
    """Built-in classes by the name they answer to (their ``kind``), in the order given: the
    ``builtins`` of a ``PluginGroup``, keyed the way a plugin's entry point is checked."""
    return {cls.kind: cls for cls in classes}


def describe_entry_point(ep: EntryPoint) -> str:
    """``entry point 'name = module:Class' of distribution dist``: how every error names it."""
    dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
    return f"entry point '{ep.name} = {ep.value}' (group {ep.group}) of distribution {dist}"


class PluginGroup(Mapping[str, type[T]], Generic[T]):
    """Classes by name: the built-ins, then the plugins of one entry-point group.

    As a mapping its keys are every name (built-in or declared by a plugin); reading a
    plugin's class imports and checks it, raising ``error`` (not ``KeyError``) when it is
    broken. ``lookup`` is the same read with an ``error`` for an unknown name too.
    """

    def __init__(
        self,
        group: str,
        *,
        base: type[Any],  # abstract: type[T] would refuse it (mypy type-abstract)
        what: str,
        builtins: Mapping[str, type[T]],
        error: type[RouteIQError],
    ) -> None:
        self.group = group
        self.base = base
        self.what = what
        # Read, not copied: a built-in added to the caller's dict later is seen here.
        self.builtins = builtins
        self.error = error
        self._lock = threading.Lock()
        self._declared: dict[str, list[EntryPoint]] | None = None
        self._loaded: dict[str, type[T] | RouteIQError] = {}

    def refresh(self) -> None:
        """Forget what was discovered (after installing a package into a running process)."""
        with self._lock:
            self._declared, self._loaded = None, {}

    def declared(self) -> dict[str, list[EntryPoint]]:
        """The group's entry points by name, listed once (no plugin is imported here)."""
        with self._lock:
            if self._declared is None:
                found: dict[str, list[EntryPoint]] = {}
                for ep in entry_points(group=self.group):
                    found.setdefault(ep.name, []).append(ep)
                self._declared = found
            return self._declared

    def names(self) -> list[str]:
        """Built-in names in their order, then the plugins' names sorted."""
        plugins = sorted(set(self.declared()) - set(self.builtins))
        return [*self.builtins, *plugins]

    def lookup(self, name: str) -> type[T]:
        """The class registered as ``name``; ``error`` names the known names, or the plugin
        and its problem (import failure, wrong base class, name mismatch, clash)."""
        eps = self.declared().get(name, [])
        if name in self.builtins:
            if eps:
                raise self.error(
                    f"{self.what} {name!r} is built in, and a plugin declares it too: "
                    f"{'; '.join(describe_entry_point(ep) for ep in eps)}. A plugin cannot "
                    f"replace a built-in: rename it or uninstall that distribution"
                )
            return self.builtins[name]
        if not eps:
            raise self.error(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}")
        with self._lock:
            loaded = self._loaded.get(name)
        if loaded is None:
            loaded = self._load(name, eps)
            with self._lock:
                self._loaded[name] = loaded
        if isinstance(loaded, RouteIQError):
            raise loaded
        return loaded

    def _load(self, name: str, eps: list[EntryPoint]) -> type[T] | RouteIQError:
        """Import and check one plugin; its problem is returned (and cached) as an error."""
        if len(eps) > 1:
            return self.error(
                f"{self.what} {name!r} is declared by several plugins: "
                f"{'; '.join(describe_entry_point(ep) for ep in eps)}; uninstall all but one"
            )
        ep = eps[0]
        where = describe_entry_point(ep)
        try:
            target = ep.load()
        except Exception as exc:  # noqa: BLE001 - third-party code fails in any way; kept as its error
            error = self.error(f"{self.what} plugin {where} cannot be imported: {exc!r}")
            error.__cause__ = exc
            return error
        base = f"{self.base.__module__}.{self.base.__qualname__}"
        if not (inspect.isclass(target) and issubclass(target, self.base)):
            return self.error(f"{self.what} plugin {where} is {target!r}, not a subclass of {base}")
        if inspect.isabstract(target):
            missing = sorted(getattr(target, "__abstractmethods__", ()))
            return self.error(
                f"{self.what} plugin {where}: {target.__qualname__} is abstract "
                f"(does not implement {', '.join(missing)})"
            )
        kind = getattr(target, "kind", None)
        if kind != name:
            return self.error(
                f"{self.what} plugin {where}: {target.__qualname__}.kind is {kind!r}, but the "
                f"entry point names it {name!r}; they must be equal (bundles and configuration "
                f"refer to it by that name)"
            )
        return cast("type[T]", target)  # a concrete subclass of ``base``, checked above

    def problems(self) -> dict[str, str]:
        """Every plugin's problem by name (imports them all): empty when all are usable."""
        found = {}
        for name in self.declared():
            try:
                self.lookup(name)
            except RouteIQError as exc:
                found[name] = str(exc)
        return found

    def check(self) -> None:
        """Raise ``error`` listing every broken or clashing plugin (a start-up check)."""
        problems = self.problems()
        if problems:
            raise self.error("; ".join(problems[name] for name in sorted(problems)))

    # Mapping: the keys are every name; reading one is ``lookup``.
    def __getitem__(self, name: str) -> type[T]:
        if name not in self:
            raise KeyError(name)
        return self.lookup(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.builtins or name in self.declared())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
