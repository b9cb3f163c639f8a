"""The upstream's HTTP layer (OpenAI's API shapes)."""

from routeiq_upstream.api.app import UpstreamAPI, create_app
from routeiq_upstream.api.metrics import UpstreamMetrics

__all__ = ["UpstreamAPI", "UpstreamMetrics", "create_app"]
