"""How the gateway is fuzzed, in-process (tests/unit) and live (tests/faults): reproducible
(derandomized, no example database, so CI sees what a developer saw) and bounded."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings for a fuzzing test: ``max_examples`` per operation, no deadline
    (a gateway answer may take a while on a busy machine), every health check off."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
