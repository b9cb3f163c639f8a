"""`routeiq topics apply` semantics against the real broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from routeiq.contracts.topics import MODEL_ANNOUNCEMENTS, TopicSpec
from routeiq.errors import TransportError
from routeiq.kafka import apply_topics

pytestmark = pytest.mark.integration


def _configs(admin, name) -> dict[str, str]:
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)]).values()
    return {k: v.value for k, v in future.result().items()}


def test_apply_creates_then_is_idempotent_then_repairs_drift(admin, unique) -> None:
    spec = MODEL_ANNOUNCEMENTS.with_name(unique("test.announcements"))
    try:
        assert [c.action for c in apply_topics(admin, [spec])] == ["created"]
        assert _configs(admin, spec.name)["cleanup.policy"] == "compact"
        assert [c.action for c in apply_topics(admin, [spec])] == ["unchanged"]

        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            future.result()
        (change,) = apply_topics(admin, [spec])
        assert change.action == "updated"
        assert "cleanup.policy" in change.details
        assert _configs(admin, spec.name)["cleanup.policy"] == "compact"
    finally:
        for future in admin.delete_topics([spec.name], operation_timeout=30).values():
            future.result()


def test_partition_mismatch_is_refused_not_repartitioned(admin, topic_factory) -> None:
    spec = topic_factory(partitions=2)
    wider = TopicSpec(spec.name, 4, spec.contract, spec.key, spec.configs)
    with pytest.raises(TransportError, match="has 2 partitions, declared 4"):
        apply_topics(admin, [wider])
    assert len(admin.list_topics(timeout=10).topics[spec.name].partitions) == 2
