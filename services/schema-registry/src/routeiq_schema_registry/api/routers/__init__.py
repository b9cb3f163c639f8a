"""The registry's endpoints, one module per resource (Confluent's paths)."""
