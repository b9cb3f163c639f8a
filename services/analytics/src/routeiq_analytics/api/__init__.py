"""HTTP: the JSON API, the dashboard, health and metrics over an ``Aggregator``."""

from routeiq_analytics.api.app import create_app

__all__ = ["create_app"]
