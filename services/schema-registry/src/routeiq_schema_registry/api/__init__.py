"""HTTP layer: Confluent's REST paths and JSON shapes, no registry logic."""

from routeiq_schema_registry.api.app import MEDIA_TYPE, create_app

__all__ = ["MEDIA_TYPE", "create_app"]
