"""RouteIQ trainer: retrain requests in; tracked, signed, gated router bundles out."""
