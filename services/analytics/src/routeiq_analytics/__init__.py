"""RouteIQ analytics: an example downstream consumer of the decision and feedback topics.

It reads ``routeiq.router_decision.v1`` and ``routeiq.feedback.v1`` with its own consumer
group, joins feedback to decisions by decision id, keeps bounded per-time-bucket aggregates and
serves rolling-window views as JSON, Prometheus metrics and a small HTML dashboard.
"""
