"""HTTP pages of the labeler, served by the Faust worker's web server."""

from routeiq_labeler.api.health import register_pages

__all__ = ["register_pages"]
