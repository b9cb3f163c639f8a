"""The gateway's HTTP API, one module per resource: ``chat`` (OpenAI-compatible), ``feedback``,
``health`` and ``admin``; ``app.create_app`` puts them together and maps errors once."""
