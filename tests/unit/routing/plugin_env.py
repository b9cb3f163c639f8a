"""Installed plugins without pip: a ``<name>.dist-info`` folder (METADATA, entry_points.txt)
on ``sys.path`` is a distribution to ``importlib.metadata``, so RouteIQ discovers its entry
points exactly as it would a pip-installed package's."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from routeiq.routing.routers import ROUTER_TYPES
from routeiq.routing.strategies import STRATEGY_KINDS

# The worked example's sources: what its entry points name.
EXAMPLE_SRC = Path(__file__).parents[3] / "examples" / "routeiq-plugin-example" / "src"
EXAMPLE_ENTRY_POINTS = {
    "routeiq.strategies": {"example_length": "routeiq_plugin_example.strategy:LengthTierStrategy"},
    "routeiq.routers": {"example_ridge": "routeiq_plugin_example.router:RidgeRouter"},
}


class Site:
    """A folder on ``sys.path`` to install fake distributions into."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.monkeypatch = monkeypatch
        self.root = root
        root.mkdir(parents=True)
        monkeypatch.syspath_prepend(str(root))

    def install(
        self,
        distribution: str,
        entry_points: Mapping[str, Mapping[str, str]],
        *,
        modules: Mapping[str, str] | None = None,
    ) -> None:
        """Add ``distribution`` with its entry points by group (and any ``modules``, as
        source text), then make RouteIQ discover plugins again."""
        info = self.root / f"{distribution.replace('-', '_')}-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n"
        )
        (info / "entry_points.txt").write_text(
            "".join(
                f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items())
                for group, eps in entry_points.items()
            )
        )
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(source)
        importlib.invalidate_caches()
        forget_plugins()

    def install_example(self) -> None:
        """The worked example as if ``pip install examples/routeiq-plugin-example`` had run."""
        self.monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
        self.install("routeiq-plugin-example", EXAMPLE_ENTRY_POINTS)


def forget_plugins() -> None:
    ROUTER_TYPES.refresh()
    STRATEGY_KINDS.refresh()


def open_site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Site]:
    """A test's fixture body: fake distributions for one test; discovery is reset
    afterwards, so that the next lookup (in another test, with ``sys.path`` restored) sees
    none of them."""
    yield Site(monkeypatch, tmp_path / "site")
    forget_plugins()
