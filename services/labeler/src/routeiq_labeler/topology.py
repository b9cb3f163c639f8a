"""Start-up checks of the Kafka topics the worker depends on.

Faust joins by partition: decisions and feedback must have the same partition count, and the
tables' changelog topics must have it too (Faust creates missing ones with that count; an
existing one with another count would send table state to the wrong partitions).
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from routeiq.errors import TransportError

from routeiq_labeler.config import LabelerSettings
from routeiq_labeler.errors import TopologyError

TABLES = ("decisions", "feedback", "meta")


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


def check_topology(admin: AdminClient, settings: LabelerSettings, *, timeout: float = 15.0) -> int:
    """Verify the topics and return the join's partition count."""
    try:
        topics = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise TransportError(
            f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {exc}"
        ) from exc
    needed = (
        settings.decisions_topic,
        settings.feedback_topic,
        settings.retrain_topic,
        settings.deadletter_topic,
    )
    missing = [t for t in needed if t not in topics or topics[t].error is not None]
    if missing:
        raise TopologyError(
            f"topic(s) {', '.join(missing)} do not exist; create them (`routeiq topics apply` "
            "for the declared ones)"
        )
    partitions = len(topics[settings.decisions_topic].partitions)
    feedback = len(topics[settings.feedback_topic].partitions)
    if feedback != partitions:
        raise TopologyError(
            f"{settings.decisions_topic} has {partitions} partitions and "
            f"{settings.feedback_topic} {feedback}: the join needs them co-partitioned"
        )
    for table in TABLES:
        name = changelog_topic(settings.app_id, table)
        if name in topics and len(topics[name].partitions) != partitions:
            raise TopologyError(
                f"changelog topic {name} has {len(topics[name].partitions)} partitions, the "
                f"sources {partitions}; delete it (state is rebuilt from the sources only if "
                "their retention still holds them) or use another app_id"
            )
    return partitions
