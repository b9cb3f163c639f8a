"""The RouteIQ gateway: OpenAI-compatible serving with learned routing.

Run with ``python -m routeiq_gateway``; the layout is in docs/gateway.md ("Code").
"""
