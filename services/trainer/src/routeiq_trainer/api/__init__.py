"""The trainer's HTTP surface: health and Prometheus metrics."""

from routeiq_trainer.api.app import create_app

__all__ = ["create_app"]
