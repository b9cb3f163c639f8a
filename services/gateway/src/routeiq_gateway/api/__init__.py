"""The gateway's HTTP API, one module per resource: ``chat`` (OpenAI-compatible), ``feedback``,
``health`` and ``admin``; ``openapi`` describes them at ``GET /openapi.json``;
``app.create_app`` puts them together and maps errors once."""
