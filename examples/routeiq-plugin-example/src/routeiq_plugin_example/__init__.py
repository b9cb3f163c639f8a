"""A RouteIQ plugin: the ``example_length`` strategy kind and the ``example_ridge`` router
type, declared in this package's entry points (``pyproject.toml``)."""

from routeiq_plugin_example.router import RidgeRouter
from routeiq_plugin_example.strategy import LengthTierStrategy

__all__ = ["LengthTierStrategy", "RidgeRouter"]
