"""The bundle's one error type."""

from __future__ import annotations

from routeiq.errors import RouteIQError

__all__ = ["BundleError"]


class BundleError(RouteIQError):
    """A bundle is malformed, tampered with, wrongly signed or fails its probes."""
