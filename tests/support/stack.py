"""What the local stack is made of, as the tests expect it (not read from the code they test)."""

from __future__ import annotations

# Every component, in start order: infrastructure first, then the services.
COMPONENTS = (
    "kafka",
    "schema-registry",
    "s3",
    "redis",
    "mlflow",
    "upstream",
    "gateway",
    "labeler",
    "trainer",
    "analytics",
)
