"""RouteIQ's offline OpenAI-compatible upstream: answers chat completions from recorded
benchmark data (GSM8K, MT-Bench, LLMRouter) so the gateway, replay and demos need no provider.

``python -m routeiq_upstream`` runs it; ``__main__`` and ``wiring`` hold the wiring, ``core``
the logic and ``api`` the HTTP layer.
"""

__version__ = "0.1.0"
