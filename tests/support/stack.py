"""What the local stack is made of, as the tests expect it (not read from the code they test)."""

from __future__ import annotations

from routeiq.settings import KafkaSettings
from routeiq_cli.stack import runner
from routeiq_cli.stack.settings import StackSettings

# Every component, in start order: infrastructure first, then the services.
COMPONENTS = (
    "kafka",
    "schema-registry",
    "s3",
    "redis",
    "mlflow",
    "jaeger",
    "upstream",
    "gateway",
    "labeler",
    "trainer",
    "analytics",
)


def running_stack() -> tuple[StackSettings, KafkaSettings]:
    """The local stack's settings, started if it is not healthy, and Kafka settings for tests
    (which join consumer groups often: a short session timeout makes joins fast)."""
    settings = StackSettings.load()
    if any(problem is not None for problem in runner.health(settings).values()):
        runner.up(settings)
    kafka = KafkaSettings(
        bootstrap_servers=settings.kafka.bootstrap_servers, session_timeout_ms=6000
    )
    return settings, kafka
